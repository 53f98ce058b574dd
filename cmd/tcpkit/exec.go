package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"tcpkit"
)

// defaultExecGrace is --exec-grace's default: how long a command may stay
// silent after the client's FIN before it is killed.
const defaultExecGrace = 5 * time.Second

// killDelay bounds the waits after a kill: for a killed command's exit to
// be reaped when the server stops, and for output from a process that
// escaped the command's process group after the command exited.
const killDelay = 2 * time.Second

// An execMode runs a command per connection (serve --mode exec), as
// ucspi-tcp's tcpserver does, and keeps track of every command it
// started until it has reaped it, so that none outlives the server.
// docs/exec.md states its rules.
type execMode struct {
	p      *printer
	argv   []string      // the command as given; argv[0] is what the child sees as its name
	path   string        // argv[0] as exec.LookPath found it at start-up
	grace  time.Duration // --exec-grace
	stderr io.Writer     // the commands' standard error: the server's

	mu       sync.Mutex
	children map[*child]struct{} // being started, or running, or not yet reaped
	stopping bool                // stop was called: start no more
	reaped   sync.WaitGroup      // one count per entry of children
}

// newExecMode checks argv's command up front: a server that could only
// fail every connection must not start.
func newExecMode(p *printer, argv []string, grace time.Duration, stderr io.Writer) (*execMode, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, errors.New(explainLookPath(argv[0], err))
	}
	return &execMode{p: p, argv: argv, path: path, grace: grace, stderr: stderr, children: make(map[*child]struct{})}, nil
}

// explainLookPath says why name cannot be run, and what to do.
func explainLookPath(name string, err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, exec.ErrDot):
		return fmt.Sprintf("--mode exec: %q is found only in the current directory through $PATH: write ./%s to run it", name, name)
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Sprintf("--mode exec: command %q not found in $PATH: check the name, or give the program's path", name)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("--mode exec: command %q does not exist: give the path of a program", name)
	case errors.Is(err, syscall.EISDIR):
		return fmt.Sprintf("--mode exec: %q is a directory: give the path of a program", name)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("--mode exec: %q is not an executable file: give a program, or make it executable (chmod +x)", name)
	case errors.As(err, &errno):
		return fmt.Sprintf("--mode exec: cannot run %q: %s", name, explainSyscall(errno))
	}
	return fmt.Sprintf("--mode exec: cannot run %q: %v", name, err)
}

// events are the connection callbacks of exec mode. Each connection gets
// a child at once; its command is started off the event loop (Offload),
// with the connection paused meanwhile, so input and the client's FIN
// reach the command in order.
func (x *execMode) events() tcpkit.Events {
	ev := x.p.baseEvents()
	ev.OnConnect = func(c *tcpkit.Conn) {
		x.p.connected(c)
		ch := &child{x: x, conn: c}
		ch.wake = sync.NewCond(&ch.mu)
		c.SetValue(ch)
		c.Offload(ch.start)
	}
	ev.OnData = func(c *tcpkit.Conn, msg []byte) { // the command's business: not printed
		if ch, ok := c.Value().(*child); ok {
			ch.feed(msg)
		}
	}
	ev.OnEnd = func(c *tcpkit.Conn) {
		if ch, ok := c.Value().(*child); ok {
			ch.peerEnd()
		}
	}
	ev.OnClose = func(c *tcpkit.Conn, hadError bool) {
		if ch, ok := c.Value().(*child); ok {
			ch.connClosed()
		}
	}
	return ev
}

// track adds ch to the children, unless the server is stopping.
func (x *execMode) track(ch *child) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopping {
		return false
	}
	x.children[ch] = struct{}{}
	x.reaped.Add(1)
	return true
}

// untrack removes ch once its command was reaped, or failed to start.
func (x *execMode) untrack(ch *child) {
	x.mu.Lock()
	delete(x.children, ch)
	x.mu.Unlock()
	x.reaped.Done()
}

// stop kills every command still running, with what it started in its
// process group, and reaps them, waiting at most timeout; no command
// starts after it. It returns how many were not reaped in time.
func (x *execMode) stop(timeout time.Duration) int {
	x.mu.Lock()
	x.stopping = true
	for ch := range x.children {
		ch.kill()
	}
	x.mu.Unlock()
	done := make(chan struct{})
	go func() {
		x.reaped.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return 0
	case <-t.C:
		x.mu.Lock()
		defer x.mu.Unlock()
		return len(x.children)
	}
}

// peerEnv describes the connection in tcpserver's environment variables.
func peerEnv(c *tcpkit.Conn) []string {
	env := []string{"PROTO=TCP"}
	if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		env = append(env, "TCPREMOTEIP="+ra.IP.String(), "TCPREMOTEPORT="+strconv.Itoa(ra.Port))
	}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		env = append(env, "TCPLOCALIP="+la.IP.String(), "TCPLOCALPORT="+strconv.Itoa(la.Port))
	}
	return env
}

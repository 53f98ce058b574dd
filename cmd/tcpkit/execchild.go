package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"tcpkit"
)

// stdinMark is how much input may wait for a command to read it before
// the connection stops reading from the client.
const stdinMark = 64 << 10

// errNotStarted says a command was not started because its connection
// closed, or the server is stopping, first: nothing to report.
var errNotStarted = errors.New("not started")

type childState int

const (
	childNew     childState = iota // the command is not started (yet)
	childRunning                   // started, not exited
	childExited                    // exited; what it left in its group was killed
)

// A child is the command serving one connection in exec mode, from the
// connection's start until the command is reaped. Four goroutines work
// on it: start (through Conn.Offload), writeStdin, pump and wait; the
// connection's callbacks call feed, peerEnd and connClosed.
type child struct {
	x    *execMode
	conn *tcpkit.Conn

	mu     sync.Mutex
	wake   *sync.Cond // on mu: input queued, or stdin closing
	state  childState
	cmd    *exec.Cmd // set when running
	killed bool      // a kill was asked: the connection closed, the grace ran out, the server stops
	stdin  *os.File  // our end of the command's stdin; nil until running
	stdout *os.File  // our end of its stdout; nil until running

	// Input waiting for the command, in order, for writeStdin.
	queue   [][]byte
	queued  int  // bytes in queue
	paused  bool // feed paused the connection: too much input waits
	closing bool // close stdin once queue is written; no more input is taken

	// The grace after the client's FIN: it runs while the command is
	// silent, that is while pump waits for its output.
	peerEnded bool        // the client's FIN came
	silent    bool        // pump is reading the command's output
	graceGen  int         // which silent spell graceT is for
	graceT    *time.Timer // armed while silent after the FIN
}

// start starts the command, from its own goroutine (Conn.Offload): the
// connection is paused until it returns, so input and the client's FIN
// wait in the kernel and reach the command in order. A command that
// cannot start is reported in one line, and its connection ended with a
// FIN, as a command that exits at once would end it.
func (ch *child) start() {
	err := ch.spawn()
	if err == nil || errors.Is(err, errNotStarted) {
		return
	}
	ch.x.p.problem(ch.conn, "cannot run "+ch.x.argv[0]+": "+explainSyscall(err))
	ch.conn.End()
}

func (ch *child) spawn() error {
	x := ch.x
	if !x.track(ch) {
		return errNotStarted
	}
	started := false
	defer func() {
		if !started {
			x.untrack(ch)
		}
	}()
	ch.mu.Lock()
	killed := ch.killed
	ch.mu.Unlock()
	if killed {
		return errNotStarted
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer inR.Close() // the command's end: it has its own copy once started
	outR, outW, err := os.Pipe()
	if err != nil {
		inW.Close()
		return err
	}
	defer outW.Close()
	cmd := &exec.Cmd{
		Path:      x.path,
		Args:      x.argv,
		Env:       append(os.Environ(), peerEnv(ch.conn)...),
		Stdin:     inR,
		Stdout:    outW,
		Stderr:    x.stderr,
		WaitDelay: killDelay, // a stderr copy held open by an escaped process must not hold Wait
	}
	setProcessGroup(cmd) // so that killing it kills what it started too
	if err := startCmd(cmd); err != nil {
		inW.Close()
		outR.Close()
		return err
	}
	started = true
	ch.mu.Lock()
	ch.state, ch.cmd, ch.stdin, ch.stdout = childRunning, cmd, inW, outR
	if ch.killed { // the connection closed, or the server began to stop, meanwhile
		killProcessGroup(cmd)
		ch.closeStdinLocked(true)
	}
	ch.mu.Unlock()
	go ch.writeStdin()
	go ch.pump()
	go ch.wait()
	return nil
}

// wait reaps the command. As soon as it has exited, and while its process
// ID is still held by it (exited, not reaped: no other process can have
// taken it), it kills what the command left running in its process group.
func (ch *child) wait() {
	unreaped := awaitExit(ch.cmd.Process.Pid)
	if !unreaped {
		// This system cannot wait without reaping: what the command left
		// in its group is not killed at its exit, since the group's ID may
		// be reused once it is reaped. (A kill from connClosed or stop
		// that comes between the reaping and childExited below has the
		// same small risk.)
		ch.cmd.Wait()
	}
	ch.mu.Lock()
	ch.state = childExited
	if unreaped {
		killProcessGroup(ch.cmd)
	}
	ch.disarmGraceLocked()
	ch.closeStdinLocked(true) // nobody reads it any more
	// Output still in the pipe is read to its end; a process that left the
	// group and holds the pipe gets killDelay of silence, not forever.
	ch.stdout.SetReadDeadline(time.Now().Add(killDelay))
	ch.mu.Unlock()
	if unreaped {
		ch.cmd.Wait()
	}
	ch.x.untrack(ch)
}

// kill kills the command and its process group, now, or as soon as it
// has started.
func (ch *child) kill() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.killed = true
	if ch.state == childRunning {
		killProcessGroup(ch.cmd)
	}
}

// connClosed is OnClose: nothing can reach the client any more, so the
// command is killed, its input dropped and its output no longer read.
func (ch *child) connClosed() {
	ch.mu.Lock()
	ch.killed = true
	if ch.state == childRunning {
		killProcessGroup(ch.cmd)
	}
	ch.disarmGraceLocked()
	ch.closeStdinLocked(true)
	out := ch.stdout
	ch.mu.Unlock()
	if out != nil {
		out.Close() // unblocks pump, should a process outside the group hold the pipe
	}
}

// feed queues a message for the command's stdin. Reading from the client
// pauses while too much waits, so a command that reads slowly, or not at
// all, slows the client down instead of growing memory or blocking the
// connection's events.
func (ch *child) feed(msg []byte) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closing || ch.stdin == nil { // no command, or it takes no more input
		return
	}
	ch.queue = append(ch.queue, bytes.Clone(msg))
	ch.queued += len(msg)
	if ch.queued > stdinMark && !ch.paused {
		ch.paused = true
		ch.conn.Pause()
	}
	ch.wake.Signal()
}

// peerEnd is OnEnd, the client's FIN: the command's stdin closes once the
// queued input is written, and the grace starts whenever the command is
// silent.
func (ch *child) peerEnd() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.peerEnded = true
	ch.closing = true
	ch.wake.Broadcast()
	ch.armGraceLocked()
}

// closeStdinLocked makes writeStdin close the command's stdin once the
// queue is written, or, with drop, drops the queue and closes it at once
// (a Write blocked on a pipe that nobody reads returns).
func (ch *child) closeStdinLocked(drop bool) {
	ch.closing = true
	ch.wake.Broadcast()
	if !drop {
		return
	}
	ch.queue, ch.queued = nil, 0
	ch.resumeLocked()
	if ch.stdin != nil {
		ch.stdin.Close()
	}
}

func (ch *child) resumeLocked() {
	if ch.paused {
		ch.paused = false
		ch.conn.Resume()
	}
}

// writeStdin is the goroutine that writes queued input to the command.
func (ch *child) writeStdin() {
	ch.mu.Lock()
	in := ch.stdin
	for {
		for len(ch.queue) == 0 && !ch.closing {
			ch.wake.Wait()
		}
		if len(ch.queue) == 0 {
			break
		}
		msg := ch.queue[0]
		ch.queue[0] = nil
		ch.queue = ch.queue[1:]
		ch.mu.Unlock()
		_, err := in.Write(msg)
		ch.mu.Lock()
		ch.queued -= len(msg)
		if err != nil { // the command stopped reading: it gets no more input
			ch.closeStdinLocked(true)
			break
		}
		if ch.queued <= stdinMark {
			ch.resumeLocked()
		}
	}
	ch.mu.Unlock()
	in.Close()
}

// pump copies the command's output to the connection, no faster than the
// client reads. Its end (the command and its group exited) ends the
// connection with a FIN after the output.
func (ch *child) pump() {
	c, out := ch.conn, ch.stdout
	defer out.Close()
	buf := make([]byte, 32<<10)
	for {
		ch.setSilent(true)
		n, err := out.Read(buf)
		ch.setSilent(false)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			if c.WaitDrain(context.Background()) != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				c.End()
			}
			return
		}
	}
}

// setSilent records whether pump waits for the command's output, which
// is when the grace after the client's FIN runs.
func (ch *child) setSilent(on bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.silent = on
	if !on {
		ch.disarmGraceLocked()
		return
	}
	if ch.state == childExited { // killDelay of silence from here, not from the exit
		ch.stdout.SetReadDeadline(time.Now().Add(killDelay))
	}
	ch.armGraceLocked()
}

// armGraceLocked starts the grace if the command is running and silent
// after the client's FIN, and it is not started yet.
func (ch *child) armGraceLocked() {
	if !ch.silent || !ch.peerEnded || ch.state != childRunning || ch.killed || ch.graceT != nil {
		return
	}
	ch.graceGen++
	gen := ch.graceGen
	ch.graceT = time.AfterFunc(ch.x.grace, func() { ch.graceOver(gen) })
}

func (ch *child) disarmGraceLocked() {
	if ch.graceT != nil {
		ch.graceT.Stop()
		ch.graceT = nil
	}
}

// graceOver kills a command that stayed silent for the grace after the
// client's FIN: the client left, or waits in vain. Its exit ends the
// connection.
func (ch *child) graceOver(gen int) {
	ch.mu.Lock()
	if gen != ch.graceGen || ch.graceT == nil || ch.state != childRunning || ch.killed {
		ch.mu.Unlock()
		return // output came, or the command is gone, meanwhile
	}
	ch.graceT = nil
	ch.killed = true
	killProcessGroup(ch.cmd)
	ch.mu.Unlock()
	ch.x.p.graceKilled(ch.conn, ch.x.argv[0], ch.x.grace)
}

// execErrnoNames are the C names of the errors starting a command meets.
var execErrnoNames = map[syscall.Errno]string{
	syscall.ENOENT:  "ENOENT",
	syscall.ENOEXEC: "ENOEXEC",
	syscall.ENOTDIR: "ENOTDIR",
	syscall.ETXTBSY: "ETXTBSY",
	syscall.E2BIG:   "E2BIG",
	syscall.EAGAIN:  "EAGAIN",
	syscall.ENOMEM:  "ENOMEM",
	syscall.EMFILE:  "EMFILE",
	syscall.ENFILE:  "ENFILE",
}

// explainSyscall says what a failed system call reported, with the
// error's C name: "no such file or directory (ENOENT)".
func explainSyscall(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	name, ok := execErrnoNames[errno]
	if !ok {
		_, name = errnoOf(errno)
	}
	return errno.Error() + " (" + name + ")"
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is a child process that compare started. Every one is in running
// until it has exited, so that stopAll can end them on any way out.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{} // closed once the process has exited
	err    error         // Wait's result; read only after done is closed
}

var running struct {
	mu    sync.Mutex
	procs map[*proc]bool // guarded by mu
}

// startProc starts args[0] with args[1:] in its own process group (so a
// Ctrl-C in the terminal reaches compare, which then stops it) and with
// SIGKILL as its parent-death signal. env is added to compare's own.
func startProc(name string, args, env []string, stdout io.Writer) (*proc, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = stdout
	p := &proc{name: name, cmd: cmd, stderr: &tailBuffer{max: 4096}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second // bounded even if a grandchild holds stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	running.mu.Lock()
	if running.procs == nil {
		running.procs = map[*proc]bool{}
	}
	running.procs[p] = true
	running.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		running.mu.Lock()
		delete(running.procs, p)
		running.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// describe says how the process ended and what it last wrote on stderr.
func (p *proc) describe() string {
	s := fmt.Sprintf("%s exited", p.name)
	if p.err != nil {
		s = fmt.Sprintf("%s: %v", p.name, p.err)
	}
	if tail := strings.TrimSpace(p.stderr.String()); tail != "" {
		s += "; stderr: " + tail
	}
	return s
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits (bounded) for the process to be gone.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = unix.Kill(-p.pid(), unix.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = unix.Kill(-p.pid(), unix.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// stopAll ends every process still running, at once.
func stopAll() {
	running.mu.Lock()
	ps := make([]*proc, 0, len(running.procs))
	for p := range running.procs {
		ps = append(ps, p)
	}
	running.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.stop(time.Second) })
	}
	wg.Wait()
}

// waitProc waits for p to exit, for at most timeout or until stop is
// closed; either of those kills it and returns an error.
func waitProc(p *proc, timeout time.Duration, stop <-chan struct{}) error {
	select {
	case <-p.done:
		if p.err != nil {
			return errors.New(p.describe())
		}
		return nil
	case <-stop:
		p.stop(0)
		return errInterrupted
	case <-time.After(timeout):
		p.stop(0)
		return fmt.Errorf("%s did not finish within %v; killed", p.name, timeout)
	}
}

var errInterrupted = errors.New("interrupted")

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte // guarded by mu
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// pinSelf moves every thread of this process to cpu, so that compare's
// own work (the /proc samplers, reading the generator's output) never
// lands on the server's core. Threads started later inherit the mask.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		var tid int
		if _, err := fmt.Sscan(t.Name(), &tid); err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d to cpu %d: %w", tid, cpu, err)
		}
	}
	return nil
}

// raiseNoFile sets the soft RLIMIT_NOFILE to the hard limit. Setting it
// explicitly matters: Go raises its own soft limit at start but gives
// children the original one unless the program calls Setrlimit itself.
func raiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

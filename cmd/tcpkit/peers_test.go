package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers for the netcat-style tests: peers such as ncat and socat, and
// processes whose standard output is taken byte for byte rather than as
// lines.

// needPeer returns the path of the peer program name (ncat, socat). When
// it is missing the test is skipped, unless $CI is set: there a missing
// peer fails, so that it cannot pass silently.
func needPeer(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed for this test in CI: %v", name, err)
		}
		t.Skipf("%s not found, skipping: %v", name, err)
	}
	return path
}

// ncFreePort returns a loopback port that was free a moment ago, for a
// peer that cannot pick its own (ncat -l). Another process may take it
// in between: callers retry when the peer cannot bind.
func ncFreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// An ncSink collects a process's standard output byte for byte and lets
// the test wait for it.
type ncSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on each write
}

func newNcSink() *ncSink { return &ncSink{changed: make(chan struct{})} }

func (s *ncSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

// bytes returns a copy of what was written so far.
func (s *ncSink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// waitLen waits until at least n bytes were written, and fails the test
// if that takes longer than timeout.
func (s *ncSink) waitLen(t testing.TB, what string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, changed := s.buf.Len(), s.changed
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: %d of %d bytes within %v", what, got, n, timeout)
		}
	}
}

// An ncProc is a running process whose standard output goes to a writer
// of the test's (by default an ncSink) instead of being split in lines;
// its standard error is read line by line.
type ncProc struct {
	lifecycle
	stdin  io.WriteCloser // its standard input, when started with none
	out    *ncSink        // its standard output, when started with no writer
	stderr *stream
}

// ncStart starts name with args. A nil stdin gives the process a pipe
// the test writes to through p.stdin; a nil stdout collects the output
// in p.out. t.Cleanup kills the process if it is still running.
func ncStart(t testing.TB, stdin io.Reader, stdout io.Writer, name string, args ...string) *ncProc {
	t.Helper()
	cmd, label := testCommand(name, args)
	p := &ncProc{lifecycle: lifecycle{name: label, cmd: cmd}}
	if stdin == nil {
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = w
	} else {
		cmd.Stdin = stdin
	}
	if stdout == nil {
		p.out = newNcSink()
		stdout = p.out
	}
	cmd.Stdout = stdout
	errR, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	p.stderr = newStream(label+" stderr", errR)
	p.describe = func() string {
		out := "(not collected)"
		if p.out != nil {
			out = quoteHead(p.out.bytes(), 200)
		}
		return fmt.Sprintf("stdout %s, stderr %q", out, p.stderr.all())
	}
	p.supervise(t, args, p.stderr.closed)
	return p
}

// ncRun runs name with stdin as its standard input to the end and
// returns its exit code, its standard output exactly and its standard
// error as lines.
func ncRun(t testing.TB, stdin string, name string, args ...string) (code int, stdout string, stderr []string) {
	t.Helper()
	p := ncStart(t, strings.NewReader(stdin), nil, name, args...)
	code = p.wait(t, waitFor)
	return code, string(p.out.bytes()), p.stderr.all()
}

// ncWaitPrefixOrEnd waits for a line of s starting with prefix and
// returns it; ok is false if s ends, or timeout passes, without one.
func ncWaitPrefixOrEnd(s *stream, prefix string, timeout time.Duration) (line string, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if strings.HasPrefix(l, prefix) {
				s.mu.Unlock()
				return l, true
			}
		}
		eof, changed := s.eof, s.changed
		s.mu.Unlock()
		if eof {
			return "", false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", false
		}
	}
}

// quoteHead quotes the first n bytes of b, for failure messages about
// large outputs.
func quoteHead(b []byte, n int) string {
	if len(b) <= n {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q... (%d bytes)", b[:n], len(b))
}

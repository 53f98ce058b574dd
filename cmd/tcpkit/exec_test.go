package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serve --mode exec: the command's up-front check, the grace after the
// client's FIN, and half-closes. The leak tests are in exec_linux_test.go.

// A command that cannot run is refused before serve listens, with one
// line that names it and says what to do.
func TestExecCommandCheckedUpFront(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.txt")
	execWriteFile(t, plain, "not a program\n", 0o644)
	for _, tt := range []struct {
		name, cmd, want string
	}{
		{"missing path", "/nonexistent/cmd", `command "/nonexistent/cmd" does not exist: give the path of a program`},
		{"not in PATH", "tcpkit-no-such-command", `command "tcpkit-no-such-command" not found in $PATH: check the name, or give the program's path`},
		{"not executable", plain, `"` + plain + `" is not an executable file: give a program, or make it executable (chmod +x)`},
		{"directory", dir, `"` + dir + `" is a directory: give the path of a program`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errs := runTcpkit(t, "serve", "--port", "0", "--host", "127.0.0.1", "--mode", "exec", "--", tt.cmd)
			checkExit(t, "serve", code, exitUsage)
			checkLines(t, "serve stdout", out, nil)
			checkLines(t, "serve stderr", errs, []string{"tcpkit serve: --mode exec: " + tt.want + " (run 'tcpkit serve -h' for help)"})
		})
	}
}

// execWriteFile writes a file that a command may run, holding the fork
// lock so that no process this one starts meanwhile inherits it open for
// writing: running it would fail with ETXTBSY.
func execWriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	syscall.ForkLock.RLock()
	err := os.WriteFile(path, []byte(content), mode)
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
}

// A command that vanishes after serve started: each client gets a clean
// end (a FIN, no reset), serve one line that says why, and serving goes
// on; when the command is back, so is the service.
func TestExecCommandGoneLater(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "hi")
	execWriteFile(t, script, "#!/bin/sh\necho hi\n", 0o755)
	srv, port := serve(t, "--mode", "exec", "--", script)
	if got := readAll(t, dial(t, port)); got != "hi\n" {
		t.Fatalf("got %q, want %q", got, "hi\n")
	}
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	c := dial(t, port)
	if got := readAll(t, c); got != "" { // readAll fails on a reset
		t.Errorf("with the command gone: got %q, want nothing, then EOF", got)
	}
	srv.stdout.waitLine(t, "error : "+c.LocalAddr().String()+" : cannot run "+script+": no such file or directory (ENOENT)", waitFor)
	execWriteFile(t, script, "#!/bin/sh\necho back\n", 0o755)
	if got := readAll(t, dial(t, port)); got != "back\n" {
		t.Errorf("with the command back: got %q, want %q", got, "back\n")
	}
}

// The grace after the client's FIN counts the command's silence.
func TestExecGrace(t *testing.T) {
	t.Parallel()

	// Silent for the whole grace: killed, and the connection ends cleanly.
	t.Run("silent command killed", func(t *testing.T) {
		t.Parallel()
		srv, port := serve(t, "--mode", "exec", "--exec-grace", "300ms", "--", "sh", "-c", "sleep 5; echo late")
		c := dial(t, port)
		write(t, c, "x")
		began := time.Now()
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, c); got != "" {
			t.Errorf("got %q, want nothing, then EOF", got)
		}
		if took := time.Since(began); took < 300*time.Millisecond {
			t.Errorf("the connection ended %v after the FIN, before the grace of 300ms", took)
		}
		srv.stdout.waitLine(t, "killed : "+c.LocalAddr().String()+" : sh was silent for 300ms after the client's FIN (--exec-grace)", waitFor)
	})

	// Each write restarts it: an answer that takes longer than the grace
	// in all, but never falls silent that long, comes whole.
	t.Run("output restarts it", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, "--mode", "exec", "--exec-grace", "1s", "--", "sh", "-c", "for i in 1 2 3 4 5 6; do sleep 0.3; echo $i; done")
		c := dial(t, port)
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if got, want := readAll(t, c), "1\n2\n3\n4\n5\n6\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	// Before the FIN there is none: a client that stays is served however
	// long the command takes.
	t.Run("only after the FIN", func(t *testing.T) {
		t.Parallel()
		_, port := serve(t, "--mode", "exec", "--exec-grace", "300ms", "--", "sh", "-c", "sleep 1; echo still here")
		c := dial(t, port)
		if got, want := readN(t, c, len("still here\n")), "still here\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// Clients that send, half-close, and read the answer get all of it: from
// a command that answers at the end of its input, and from one that
// answers after a pause (within the grace). ncat half-closes at the end
// of its standard input and reads on.
func TestExecHalfCloseNcat(t *testing.T) {
	t.Parallel()
	ncat := needPeer(t, "ncat")
	for _, tt := range []struct {
		name string
		argv []string
		want string
	}{
		{"tr", []string{"tr", "a-z", "A-Z"}, "HELLO"},
		{"answer after a pause", []string{"sh", "-c", "sleep 1; cat"}, "hello"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, port := serve(t, append([]string{"--mode", "exec", "--"}, tt.argv...)...)
			code, out, errs := ncRun(t, "hello", ncat, "127.0.0.1", itoa(port))
			checkExit(t, "ncat", code, 0)
			if out != tt.want {
				t.Errorf("ncat stdout: got %q, want %q", out, tt.want)
			}
			checkLines(t, "ncat stderr", errs, nil)
		})
	}
}

// Input sent at once, before the command can have started, and the FIN
// right after it, reach the command whole and in order, on both engines:
// the connection waits, paused, while the command starts off the loop.
// 200 KiB is more than the input queue holds, so reading pauses too.
func TestExecEarlyInput(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("0123456789abcdef", 200<<10/16)
	for _, engine := range []string{"auto", "std"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			_, port := serve(t, "--mode", "exec", "--engine", engine, "--", "cat")
			c := dial(t, port)
			go func() { // the client's writes and its reads overlap
				c.Write([]byte(in))
				c.CloseWrite()
			}()
			if got := readAll(t, c); got != in {
				t.Errorf("got %s back, want the %d bytes sent", quoteHead([]byte(got), 40), len(in))
			}
		})
	}
}

// execNcatListen starts "ncat -v -l 127.0.0.1 PORT args..." on a free
// port and returns it once it listens.
func execNcatListen(t testing.TB, ncat string, args ...string) (*proc, int) {
	t.Helper()
	for attempt := 1; ; attempt++ { // the free port may be taken meanwhile
		port := ncFreePort(t)
		srv := start(t, ncat, append([]string{"-v", "-l", "127.0.0.1", itoa(port)}, args...)...)
		if _, ok := ncWaitPrefixOrEnd(srv.stderr, "Ncat: Listening on ", waitFor); ok {
			return srv, port
		}
		srv.cmd.Process.Kill()
		srv.wait(t, waitFor)
		if attempt == 3 {
			t.Fatalf("ncat -l did not start listening: %q", srv.stderr.all())
		}
	}
}

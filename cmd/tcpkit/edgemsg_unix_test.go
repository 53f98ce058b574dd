//go:build unix

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// emShared returns a new directory that every user may enter and read,
// removed when the test ends.
func emShared(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tcpkit-em-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// emRunUnprivileged runs tcpkit with args as a user whom file
// permissions bind: as root, a copy of the binary as the user nobody
// (65534); otherwise the binary as ourselves. It returns the exit code
// and the output lines.
func emRunUnprivileged(t *testing.T, args ...string) (code int, stdout, stderr []string) {
	t.Helper()
	bin := tcpkitBin
	var attr *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		bin = filepath.Join(emShared(t), "tcpkit")
		src, err := os.ReadFile(tcpkitBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, src, 0o755); err != nil {
			t.Fatal(err)
		}
		attr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.SysProcAttr, cmd.Dir = tcpkitEnv(), attr, os.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running tcpkit %q unprivileged: %v", args, err)
	}
	lines := func(b *bytes.Buffer) []string {
		if b.Len() == 0 {
			return nil
		}
		return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	}
	return cmd.ProcessState.ExitCode(), lines(&out), lines(&errOut)
}

// A Unix socket path over the system's limit is refused up front, by
// serve and connect alike, with the limit; one at the limit works. A
// permission failure names EACCES, on both sides.
func TestUnixSocketPathCLI(t *testing.T) {
	t.Parallel()
	base := emShared(t)
	path := func(n int) string {
		p := filepath.Join(base, "s")
		return p + strings.Repeat("x", n-len(p))
	}

	t.Run("over the limit", func(t *testing.T) {
		t.Parallel()
		long := path(maxUnixPath + 1)
		want := "--unix path is " + itoa(maxUnixPath+1) + " bytes, over the " + itoa(maxUnixPath) +
			"-byte limit of a Unix socket path: use a shorter one, such as /tmp/tcpkit.sock"
		code, out, errOut := runTcpkit(t, "serve", "--unix", long)
		checkExit(t, "serve --unix with a long path", code, exitUsage)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit serve: " + want + " (run 'tcpkit serve -h' for help)"})
		code, out, errOut = runTcpkit(t, "connect", "--unix", long, "--count", "1")
		checkExit(t, "connect --unix with a long path", code, exitUsage)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: " + want + " (run 'tcpkit connect -h' for help)"})
		if _, err := os.Lstat(long); err == nil {
			t.Errorf("serve made %s", long)
		}
	})

	t.Run("at the limit", func(t *testing.T) {
		t.Parallel()
		p := path(maxUnixPath)
		srv := ncServeUnix(t, p)
		ncUnixRoundTrip(t, srv, p)
		stop(t, srv)
	})

	t.Run("permission denied", func(t *testing.T) {
		t.Parallel()
		locked := filepath.Join(base, "locked")
		if err := os.Mkdir(locked, 0o555); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(locked, "s.sock")
		code, out, errOut := emRunUnprivileged(t, "serve", "--unix", sock)
		checkExit(t, "serve --unix in a directory it may not write", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit serve: cannot listen on " + sock + ": permission denied: this user may not create files in " + locked + " (EACCES)"})

		sock = filepath.Join(base, "p.sock")
		srv := ncServeUnix(t, sock)
		if err := os.Chmod(sock, 0o500); err != nil { // nobody may write to it: connect needs that
			t.Fatal(err)
		}
		code, out, errOut = emRunUnprivileged(t, "connect", "--unix", sock, "-")
		checkExit(t, "connect --unix to a socket it may not write", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: cannot connect to " + sock + ": permission denied (EACCES)"})
		stop(t, srv)
	})
}

package main

// Runs the command examples of docs/*.md pages as they are written, so
// that the docs cannot go stale. Helpers here are prefixed "dx".
//
// An example is a fenced block whose first line starts with "$ ". Each
// "$ " line is a command, run with sh in a fresh directory shared by the
// block, with the tcpkit under test first in PATH; the lines after it,
// up to the next command, are what it prints: its standard output, then
// its standard error. A line ending in "  # serve" is one the block's
// last background server prints instead, waited for in order after the
// command. "$ echo $?" prints the last command's exit code. A command
// ending in "&" runs in the background and must be a "tcpkit serve
// --port N": it gets a free port on 127.0.0.1 instead, and N stands for
// that port in the commands and output after it. Output is compared
// modulo loopback ports (the client's are not known), PIDs and the
// durations after "after".

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// dxPages are the docs pages whose examples run here.
var dxPages = []string{"tls-and-proxy.md", "connect.md"}

// A dxStep is one command of an example and what it prints.
type dxStep struct {
	line  int    // of the command, in the page
	cmd   string // without "$ " and, for background ones, "&"
	bg    bool
	out   []string // standard output, then standard error
	serve []string // lines of the last background server
}

// dxParse returns the examples of a page, one slice of steps each.
func dxParse(page string) [][]dxStep {
	var blocks [][]dxStep
	var cur []dxStep
	in, session := false, false
	serveLine := regexp.MustCompile(`^(.*?)\s{2,}# serve$`)
	for i, l := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(l, "```"):
			if in && session {
				blocks = append(blocks, cur)
			}
			in, session, cur = !in, false, nil
		case !in:
		case strings.HasPrefix(l, "$ "):
			session = true
			cmd := strings.TrimPrefix(l, "$ ")
			bg := strings.HasSuffix(cmd, " &")
			cur = append(cur, dxStep{line: i + 1, cmd: strings.TrimSuffix(cmd, " &"), bg: bg})
		case !session: // not an example: some other listing
		case serveLine.MatchString(l):
			s := &cur[len(cur)-1]
			s.serve = append(s.serve, serveLine.FindStringSubmatch(l)[1])
		default:
			s := &cur[len(cur)-1]
			s.out = append(s.out, l)
		}
	}
	return blocks
}

var (
	dxLoopback = regexp.MustCompile(`\b(127\.0\.0\.1|localhost|\[::1\]):\d+\b`)
	dxPID      = regexp.MustCompile(`\(PID \d+\)`)
	dxAfter    = regexp.MustCompile(`\bafter \d+(\.\d+)?(ns|µs|us|ms|s|m|h)\b`)
)

// dxNormal is l with what changes from run to run made constant.
func dxNormal(l string) string {
	l = dxLoopback.ReplaceAllString(l, "$1:PORT")
	l = dxPID.ReplaceAllString(l, "(PID N)")
	return strings.TrimRight(dxAfter.ReplaceAllString(l, "after DURATION"), " ")
}

func dxNormalAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = dxNormal(l)
	}
	return out
}

// dxLines splits a process's output in lines; a last line may lack its
// newline.
func dxLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestDocsExamples(t *testing.T) {
	t.Parallel()
	bin := t.TempDir() // holds "tcpkit", first in the examples' PATH
	if err := os.Symlink(tcpkitBin, filepath.Join(bin, "tcpkit")); err != nil {
		t.Fatal(err)
	}
	env := append(tcpkitEnv(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, page := range dxPages {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", page))
		if err != nil {
			t.Fatal(err)
		}
		blocks := dxParse(string(b))
		if len(blocks) == 0 {
			t.Errorf("docs/%s: no examples found", page)
		}
		for _, steps := range blocks {
			t.Run(fmt.Sprintf("%s:%d", page, steps[0].line), func(t *testing.T) {
				t.Parallel()
				dxRun(t, page, steps, env)
			})
		}
	}
}

// dxRun runs one example's steps in a new directory.
func dxRun(t *testing.T, page string, steps []dxStep, env []string) {
	dir := t.TempDir()
	ports := map[string]string{} // the page's port to the real one
	portFlag := regexp.MustCompile(`--port (\d+)`)
	withPorts := func(s string) string {
		for doc, real := range ports {
			s = regexp.MustCompile(`\b`+doc+`\b`).ReplaceAllString(s, real)
		}
		return s
	}
	var servers []*proc
	var last *proc // the last background server
	code := 0      // the last command's exit code
	for _, st := range steps {
		where := fmt.Sprintf("docs/%s:%d: %s", page, st.line, st.cmd)
		cmd := withPorts(st.cmd)
		if st.bg {
			m := portFlag.FindStringSubmatch(cmd)
			if !strings.HasPrefix(cmd, "tcpkit serve ") || m == nil {
				t.Fatalf("%s: a background command must be tcpkit serve --port N", where)
			}
			cmd = strings.Replace(cmd, m[0], "--port 0 --host 127.0.0.1", 1)
			last = dxStart(t, dir, env, cmd)
			servers = append(servers, last)
			line := last.stdout.waitPrefix(t, "listen on port ", waitFor)
			real, _, _ := strings.Cut(strings.TrimPrefix(line, "listen on port "), " ")
			ports[m[1]] = real
			continue
		}
		var out []string
		if cmd == "echo $?" {
			out = []string{strconv.Itoa(code)}
		} else {
			code, out = dxExec(t, dir, env, cmd)
		}
		want := make([]string, len(st.out))
		for i, l := range st.out {
			want[i] = dxNormal(withPorts(l))
		}
		if !slices.Equal(dxNormalAll(out), want) {
			t.Errorf("%s printed:\n%s\nwant:\n%s", where, strings.Join(out, "\n"), strings.Join(st.out, "\n"))
		}
		for _, want := range st.serve {
			if last == nil {
				t.Fatalf("%s: a \"# serve\" line, and no server runs", where)
			}
			want = dxNormal(withPorts(want))
			last.stdout.waitMatch(t, fmt.Sprintf("%q (after %s)", want, where), func(l string) bool { return dxNormal(l) == want }, waitFor)
		}
	}
	for _, s := range servers {
		s.signal(t, syscall.SIGTERM)
		if code := s.wait(t, waitFor); code != exitOK {
			t.Errorf("docs/%s: a server exited %d after SIGTERM", page, code)
		}
	}
}

// dxExec runs cmd with sh in dir, standard input empty, and returns its
// exit code and its output lines: standard output, then standard error.
func dxExec(t *testing.T, dir string, env []string, cmd string) (int, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Dir, c.Env, c.WaitDelay = dir, env, waitFor
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: did not end within %v; stdout %q, stderr %q", cmd, 2*waitFor, stdout.String(), stderr.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", cmd, err)
	}
	return c.ProcessState.ExitCode(), append(dxLines(stdout.Bytes()), dxLines(stderr.Bytes())...)
}

// dxStart starts cmd with sh in dir, in the background; cmd's process
// replaces the shell, so that signals reach it.
func dxStart(t *testing.T, dir string, env []string, cmd string) *proc {
	t.Helper()
	c, label := testCommand("sh", []string{"-c", "exec " + cmd})
	c.Dir, c.Env = dir, env
	outR, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, err := c.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd, err)
	}
	label += ": " + cmd
	p := &proc{
		lifecycle: lifecycle{name: label, cmd: c},
		stdout:    newStream(label+" stdout", outR),
		stderr:    newStream(label+" stderr", errR),
	}
	p.describe = func() string { return fmt.Sprintf("stdout %q, stderr %q", p.stdout.all(), p.stderr.all()) }
	p.supervise(t, []string{cmd}, p.stdout.closed, p.stderr.closed)
	return p
}

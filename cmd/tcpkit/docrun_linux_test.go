package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A docNet is a network namespace of the test's own with its loopback up,
// where examples run with the ports the docs show (5000 and the rest)
// without meeting anything else on the machine.
type docNet struct {
	ns  string // /proc/PID/ns/net of the process that holds it
	dir string // the examples' working directory; /tmp/ in a command means it
}

func newDocNet(t testing.TB) *docNet {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the doc examples run in a network namespace of their own, which needs root")
		}
		t.Skip("the doc examples run in a network namespace of their own, which needs root")
	}
	unshare, ip := needPeer(t, "unshare"), needPeer(t, "ip")
	needPeer(t, "nsenter")
	holder := exec.Command(unshare, "--net", "--", "sh", "-c", ip+" link set lo up && echo up && exec sleep 3600")
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare --net: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	buf := make([]byte, 3)
	if n, err := out.Read(buf); err != nil || string(buf[:n]) != "up\n" {
		t.Fatalf("the namespace's loopback did not come up: %q, %v", buf[:n], err)
	}
	return &docNet{ns: "/proc/" + strconv.Itoa(holder.Process.Pid) + "/ns/net", dir: t.TempDir()}
}

// command makes the process that runs a transcript's command line in the
// namespace, with bash, the tcpkit under test first on the PATH, the
// line's /tmp/ made the examples' directory, and env's variables set.
func (n *docNet) command(line string, env []string) *exec.Cmd {
	// The repository itself may be under /tmp (a fresh clone in CI): a
	// path into it is kept as it is.
	root := repoPath(nil, ".")
	line = strings.ReplaceAll(line, root, "\x00")
	line = strings.ReplaceAll(line, "/tmp/", n.dir+"/")
	line = strings.ReplaceAll(line, "\x00", root)
	cmd := exec.Command("nsenter", "--net="+n.ns, "--", "bash", "-c", line)
	cmd.Dir = n.dir
	cmd.Env = append(slices.Concat(tcpkitEnv(), env), "PATH="+filepath.Dir(tcpkitBin)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // ^C goes to the whole pipeline
	cmd.WaitDelay = waitFor
	return cmd
}

// A docRun runs the examples of one runner: the blocks it names, in one
// namespace, checked against what they print.
type docRun struct {
	t      *testing.T
	net    *docNet
	blocks map[string]docBlock
	bg     []*docProc // running in the background until the run ends
	code   int        // the last command's exit code, for "echo $?"
	env    []string   // NAME=PID of the background commands that keep theirs
	// numbers masks every number of the output: a load generator's
	// figures are never the same twice.
	numbers bool
}

// A docProc is one command of a transcript, started.
type docProc struct {
	dir     string // the examples' directory, shown as /tmp/ in the docs
	c       *docCmd
	where   string
	norm    docNormalizer
	p       *proc
	started time.Time
}

// start starts c and returns it running.
func (r *docRun) start(c *docCmd, b docBlock, norm docNormalizer) *docProc {
	r.t.Helper()
	return r.startWith(c, b, norm, nil)
}

// startWith is start with stdin as the command's standard input; nil is
// /dev/null: not a pipe, so connect keeps the seed's mode.
func (r *docRun) startWith(c *docCmd, b docBlock, norm docNormalizer, stdin *os.File) *docProc {
	r.t.Helper()
	cmd := r.net.command(c.line, r.env)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	errR, err := cmd.StderrPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("%s: $ %s: %v", b.where(), c.line, err)
	}
	p := &proc{
		lifecycle: lifecycle{name: c.line, cmd: cmd},
		stdout:    newStream("stdout of $ "+c.line, outR),
		stderr:    newStream("stderr of $ "+c.line, errR),
	}
	p.describe = func() string { return fmt.Sprintf("stdout %q, stderr %q", p.stdout.all(), p.stderr.all()) }
	p.supervise(r.t, []string{c.line}, p.stdout.closed, p.stderr.closed)
	r.t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return &docProc{dir: r.net.dir, c: c, where: b.where(), norm: norm, p: p, started: time.Now()}
}

// untmp shows the examples' directory in lines as the docs do: /tmp/.
func (dp *docProc) untmp(lines []string) []string {
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, dp.dir+"/", "/tmp/")
	}
	return lines
}

// waitLines waits until dp has printed n lines on its two streams.
func (dp *docProc) waitLines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for len(dp.p.stdout.all())+len(dp.p.stderr.all()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: $ %s printed %q and %q within %v, want %d lines", dp.where, dp.c.line, dp.p.stdout.all(), dp.p.stderr.all(), waitFor, n)
		}
		dp.p.stdout.mu.Lock()
		ch1 := dp.p.stdout.changed
		dp.p.stdout.mu.Unlock()
		dp.p.stderr.mu.Lock()
		ch2 := dp.p.stderr.changed
		dp.p.stderr.mu.Unlock()
		select {
		case <-ch1:
		case <-ch2:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// interrupt waits until dp printed what its transcript shows before its
// ^C, sends the ^C (SIGINT to its process group, as a terminal does),
// and checks all it printed.
func (dp *docProc) interrupt(t testing.TB) int {
	t.Helper()
	dp.waitLines(t, len(dp.c.want))
	syscall.Kill(-dp.p.cmd.Process.Pid, syscall.SIGINT)
	code := dp.p.wait(t, waitFor)
	checkTranscript(t, dp.where, dp.norm, dp.c, dp.untmp(dp.p.stdout.all()), dp.untmp(dp.p.stderr.all()))
	return code
}

// session runs the transcript of block id as a terminal would, one
// command after the other: a command with a ^C runs until it printed
// what comes before it, then gets the ^C; one with & runs on, once it
// printed its first line, until the run ends; the others run to their
// end. "echo $?" is the last exit code.
func (r *docRun) session(id string) {
	r.t.Helper()
	b := r.block(id)
	cmds := parseTranscript(r.t, b)
	norm := newDocNormalizer(cmds)
	norm.all = r.numbers
	for _, c := range cmds {
		switch {
		case c.line == "echo $?":
			checkTranscript(r.t, b.where(), newDocNormalizer(cmds), c, []string{strconv.Itoa(r.code)}, nil)
		case c.background:
			// As a person would, wait for it to say it is up (a server's
			// listen line) before typing the next command.
			dp := r.start(c, b, norm)
			dp.waitLines(r.t, 1)
			r.bg = append(r.bg, dp)
			if c.pidVar != "" {
				r.env = append(r.env, c.pidVar+"="+strconv.Itoa(dp.p.cmd.Process.Pid))
			}
		case c.interrupted:
			r.code = r.start(c, b, norm).interrupt(r.t)
		default:
			dp := r.start(c, b, norm)
			r.code = dp.p.wait(r.t, waitFor)
			checkTranscript(r.t, b.where(), norm, c, dp.untmp(dp.p.stdout.all()), dp.untmp(dp.p.stderr.all()))
		}
	}
}

// server starts the first command of block id, a long-running one with a
// ^C in its transcript, and waits for its first n lines (its listen
// lines): the other terminal's commands then find it listening.
func (r *docRun) server(id string, n int) *docProc {
	r.t.Helper()
	b := r.block(id)
	cmds := parseTranscript(r.t, b)
	if len(cmds) != 1 || !cmds[0].interrupted {
		r.t.Fatalf("%s: example %s is not one command ended by ^C", b.where(), id)
	}
	dp := r.start(cmds[0], b, newDocNormalizer(cmds))
	dp.waitLines(r.t, n)
	return dp
}

// startBlock starts the one command of block id, which runs on by itself
// (a serve - waiting for its client), and waits for its first n lines.
// Its standard input is a terminal nobody types into: open, and silent.
// finish waits for it to end, and checks it.
func (r *docRun) startBlock(id string, n int) *docProc {
	r.t.Helper()
	b := r.block(id)
	cmds := parseTranscript(r.t, b)
	if len(cmds) != 1 {
		r.t.Fatalf("%s: example %s is not one command", b.where(), id)
	}
	tty, typed, err := os.Pipe()
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { typed.Close() })
	dp := r.startWith(cmds[0], b, newDocNormalizer(cmds), tty)
	tty.Close()
	dp.waitLines(r.t, n)
	return dp
}

// finish waits for dp to end by itself, or gives it the ^C its
// transcript shows, and checks what it printed.
func (dp *docProc) finish(t testing.TB) int {
	t.Helper()
	if dp.c.interrupted {
		return dp.interrupt(t)
	}
	code := dp.p.wait(t, waitFor)
	checkTranscript(t, dp.where, dp.norm, dp.c, dp.untmp(dp.p.stdout.all()), dp.untmp(dp.p.stderr.all()))
	return code
}

// background starts line in the namespace, as a command of no
// transcript: a peer an example needs (a server for a client's example).
// It runs until the run ends. ready is a line of its output to wait for.
func (r *docRun) background(line, ready string) *proc {
	r.t.Helper()
	dp := r.start(&docCmd{line: line}, docBlock{file: "(setup)"}, docNormalizer{})
	if ready != "" {
		dp.p.stdout.waitLine(r.t, strings.ReplaceAll(ready, "/tmp/", r.net.dir+"/"), waitFor)
	}
	r.bg = append(r.bg, dp)
	return dp.p
}

func (r *docRun) block(id string) docBlock {
	b, ok := r.blocks[id]
	if !ok {
		r.t.Fatalf("no doc shows example %s", id)
	}
	return b
}

// end stops what runs in the background with a ^C, as the operator
// would, waits for it, and checks that it printed the lines its
// transcript marks as its, in order (among others: a listen line, say).
func (r *docRun) end() {
	for _, dp := range r.bg {
		syscall.Kill(-dp.p.cmd.Process.Pid, syscall.SIGINT)
		dp.p.wait(r.t, waitFor)
		out := dp.untmp(dp.p.stdout.all())
		i := 0
		for _, l := range out {
			if i < len(dp.c.want) && dp.norm.line(l) == dp.norm.line(dp.c.want[i]) {
				i++
			}
		}
		if i < len(dp.c.want) {
			r.t.Errorf("%s: $ %s &\nthe doc shows it printing, in this order:\n  %s\nit printed:\n  %s",
				dp.where, dp.c.line, strings.Join(dp.c.want, "\n  "), strings.Join(out, "\n  "))
		}
	}
	r.bg = nil
}

// TestDocExamples runs every example of the docs.
func TestDocExamples(t *testing.T) {
	blocks := docBlocksByID(t)
	for id, runner := range docRunners {
		t.Run(id, func(t *testing.T) {
			t.Parallel()
			r := &docRun{t: t, net: newDocNet(t), blocks: blocks}
			runner(r)
			r.end()
		})
	}
}

// run runs line in the namespace to its end, as a command of no
// transcript: what an example needs done first (a client whose server's
// output the example shows). It fails the test unless line exits 0.
func (r *docRun) run(line string) (stdout, stderr []string) {
	r.t.Helper()
	return r.runCode(line, exitOK)
}

// runCode is run for a command that exits with code.
func (r *docRun) runCode(line string, code int) (stdout, stderr []string) {
	r.t.Helper()
	dp := r.start(&docCmd{line: line}, docBlock{file: "(setup)"}, docNormalizer{})
	if got := dp.p.wait(r.t, waitFor); got != code {
		r.t.Fatalf("setup: $ %s exited %d, want %d: %s", line, got, code, dp.p.describe())
	}
	return dp.p.stdout.all(), dp.p.stderr.all()
}

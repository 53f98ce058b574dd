package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docs/bench.md is run as written: every "$ " line of its console blocks
// runs in a shell, in one directory, one after another, with the tcpkit
// under test first in PATH, and its output is compared with the lines
// the page shows under it, modulo numbers (counts, times, ports, PIDs)
// and the kernel line (the counters are the whole machine's). "$ echo $?"
// shows the exit code of the command before it. A "tcpkit serve ... &"
// line starts that server on a free port instead of the one shown, and
// the port shown is replaced by it in the lines after; "name=$!" after
// it sets $name to the server's PID. Any other port in 5000-5099 is one
// with nothing listening.
func TestBenchDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/bench.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := docExamples(string(doc))
	if len(examples) == 0 {
		t.Fatal("docs/bench.md has no examples")
	}
	dir := t.TempDir()
	env := append(tcpkitEnv(), "PATH="+filepath.Dir(tcpkitBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	ports := map[string]string{}
	portOf := func(shown string) string {
		if p, ok := ports[shown]; ok {
			return p
		}
		ports[shown] = itoa(closedPort(t))
		return ports[shown]
	}
	shownPort := regexp.MustCompile(`\b50\d\d\b`)
	lastCode := -1
	for _, ex := range examples {
		if ex.cmd == "echo $?" {
			checkLines(t, "exit code of the command before line "+itoa(ex.line), []string{itoa(lastCode)}, ex.want)
			continue
		}
		if server, name, background := strings.Cut(ex.cmd, " &"); background {
			args := strings.Fields(server)
			if len(args) < 2 || args[0] != "tcpkit" || args[1] != "serve" || len(ex.want) != 0 {
				t.Fatalf("docs/bench.md:%d: a background command must be a tcpkit serve with no output shown: %q", ex.line, ex.cmd)
			}
			shown := ""
			for i, a := range args {
				if a == "--port" && i+1 < len(args) {
					shown, args[i+1] = args[i+1], "0"
				}
			}
			p := start(t, tcpkitBin, args[1:]...)
			listen := p.stdout.waitPrefix(t, "listen on port ", waitFor)
			digits, _, _ := strings.Cut(strings.TrimPrefix(listen, "listen on port "), " ")
			ports[shown] = digits
			if name = strings.TrimSpace(name); name != "" {
				env = append(env, strings.TrimSuffix(name, "=$!")+"="+strconv.Itoa(p.cmd.Process.Pid))
			}
			continue
		}
		cmdline := shownPort.ReplaceAllStringFunc(ex.cmd, portOf)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		sh := exec.CommandContext(ctx, "sh", "-c", cmdline)
		sh.Dir, sh.Env = dir, env
		var out bytes.Buffer
		sh.Stdout, sh.Stderr = &out, &out // one pipe: the lines in the order written
		err := sh.Run()
		timedOut := ctx.Err() != nil
		cancel()
		lastCode = sh.ProcessState.ExitCode()
		if timedOut {
			t.Fatalf("docs/bench.md:%d: %s did not finish within a minute: %v", ex.line, ex.cmd, err)
		}
		got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if out.Len() == 0 {
			got = nil
		}
		if g, w := normalizeDoc(got), normalizeDoc(ex.want); !slices.Equal(g, w) {
			t.Errorf("docs/bench.md:%d: $ %s\n got:\n%s\nwant:\n%s", ex.line, ex.cmd, strings.Join(got, "\n"), strings.Join(ex.want, "\n"))
		}
	}

	// Each example of bench -h is one of these, so it runs too.
	var help, errOut bytes.Buffer
	run(context.Background(), []string{"bench", "-h"}, &help, &errOut)
	text := help.String()
	text = text[strings.Index(text, "Examples:\n"):strings.Index(text, "Flags:\n")]
	for _, l := range strings.Split(text, "\n")[1:] {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		found := false
		for _, ex := range examples {
			found = found || ex.cmd == l
		}
		if !found {
			t.Errorf("bench -h shows %q, which docs/bench.md does not run", l)
		}
	}
}

// A docExample is a "$ " line of a console block and the lines under it.
type docExample struct {
	line int // in the file, from 1
	cmd  string
	want []string
}

func docExamples(doc string) []docExample {
	var exs []docExample
	in := false
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "```"):
			in = l == "```console"
		case !in:
		case strings.HasPrefix(l, "$ "):
			exs = append(exs, docExample{line: n, cmd: strings.TrimPrefix(l, "$ ")})
		case len(exs) > 0:
			exs[len(exs)-1].want = append(exs[len(exs)-1].want, l)
		}
	}
	return exs
}

var docNumber = regexp.MustCompile(`\d+(\.\d+)?( ?(ns|µs|ms|s|KiB|MiB|GiB|TiB|B)\b)?`)

// normalizeDoc masks what changes from run to run: numbers with their
// units, and the kernel line's counters.
func normalizeDoc(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if strings.HasPrefix(l, "kernel ") {
			l = "kernel ..."
		}
		out[i] = docNumber.ReplaceAllString(l, "N")
	}
	return out
}

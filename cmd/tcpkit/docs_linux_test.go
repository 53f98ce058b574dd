package main

// The docs cannot go stale: every command example in README.md and
// docs/*.md is a console transcript that a test runs as written, in a
// network namespace of its own (so the ports are the ones shown), and
// compares with what the commands print; every Go example is one that
// example_test.go runs; every command's -h examples run too
// (docs_usage_test.go).

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A docBlock is one fenced block of a markdown file.
type docBlock struct {
	file string // relative to the repository's root
	line int    // of the opening fence
	info string // the fence's info string: "console", "go", ""
	id   string // from an <!-- example: ID --> line right before it
	text []string
}

func (b docBlock) where() string { return b.file + ":" + strconv.Itoa(b.line) }

var exampleMarkRe = regexp.MustCompile(`^<!-- example: ([a-z0-9-]+) -->$`)

// docFiles are the markdown files whose examples must run.
func docFiles(t testing.TB) []string {
	t.Helper()
	files := []string{"README.md"}
	more, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		files = append(files, strings.TrimPrefix(f, "../../"))
	}
	return files
}

// readDocBlocks returns the fenced blocks of the doc files.
func readDocBlocks(t testing.TB) []docBlock {
	t.Helper()
	var blocks []docBlock
	for _, name := range docFiles(t) {
		f, err := os.Open(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		var cur *docBlock
		indent := "" // of the open block's fence: a block in a list item is indented
		prev, n := "", 0
		for sc.Scan() {
			n++
			l := sc.Text()
			trimmed := strings.TrimLeft(l, " ")
			switch {
			case cur == nil && strings.HasPrefix(trimmed, "```"):
				cur = &docBlock{file: name, line: n, info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
				indent = l[:len(l)-len(trimmed)]
				if m := exampleMarkRe.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
					cur.id = m[1]
				}
			case cur != nil && strings.HasPrefix(trimmed, "```"):
				blocks = append(blocks, *cur)
				cur = nil
			case cur != nil:
				cur.text = append(cur.text, strings.TrimPrefix(l, indent))
			}
			prev = l
		}
		f.Close()
		if cur != nil {
			t.Fatalf("%s: the block opened at line %d is not closed", name, cur.line)
		}
	}
	return blocks
}

// commandLineRe matches a line that runs tcpkit, as a prompt's command or
// bare ("tcpkit serve: stopped" is output: a verb followed by a colon).
var commandLineRe = regexp.MustCompile(`^(\$ )?(sudo )?tcpkit [a-z-]+( |$)`)

// Every example is run by a test: a console block with an example mark
// that names a runner; no block shows a tcpkit command any other way; every
// runner has its block; and every Go block is code example_test.go runs.
func TestDocsExamplesAreTested(t *testing.T) {
	examples, err := os.ReadFile("../../example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, b := range readDocBlocks(t) {
		switch {
		case b.info == "go":
			if !strings.Contains(squash(string(examples)), squash(strings.Join(b.text, "\n"))) {
				t.Errorf("%s: this Go block is not code of example_test.go, which go test runs: copy it from there", b.where())
			}
			continue
		case b.id != "":
			if b.info != "console" {
				t.Errorf("%s: example %s is a ```%s block; write it as ```console", b.where(), b.id, b.info)
			}
			if at, dup := seen[b.id]; dup {
				t.Errorf("%s: example %s is also at %s", b.where(), b.id, at)
			}
			seen[b.id] = b.where()
			if _, ok := docRunners[b.id]; !ok {
				t.Errorf("%s: example %s has no runner in docRunners", b.where(), b.id)
			}
			continue
		case b.info == "console":
			t.Errorf("%s: a console block without an <!-- example: ID --> line before it: no test runs it", b.where())
			continue
		}
		for _, l := range b.text {
			if commandLineRe.MatchString(l) {
				t.Errorf("%s: %q runs tcpkit in a block no test runs: make it a console block with an example mark, or show it as prose", b.where(), l)
				break
			}
		}
	}
	for id := range docRunners {
		if _, ok := seen[id]; !ok {
			t.Errorf("docRunners has %s, which no doc shows", id)
		}
	}
}

// squash drops whitespace, tabs against spaces being no matter.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// docBlocksByID returns the example blocks by their ids.
func docBlocksByID(t testing.TB) map[string]docBlock {
	t.Helper()
	m := map[string]docBlock{}
	for _, b := range readDocBlocks(t) {
		if b.id != "" {
			m[b.id] = b
		}
	}
	return m
}

// A docCmd is one command of a transcript and what it printed: the lines
// before a "^C" (the operator's Ctrl-C, which makes it long-running: it
// runs until then) and after it.
type docCmd struct {
	line        string   // without the prompt
	want        []string // printed before ^C, or all it printed
	after       []string // printed after ^C
	interrupted bool     // a ^C line ends it
	background  bool     // "&": it runs on; want are the lines marked as its
	pidVar      string   // "& NAME=$!": the later commands find its PID in $NAME
}

// pidVarRe is a background command that keeps its PID: "CMD & NAME=$!".
var pidVarRe = regexp.MustCompile(`^(.*) & ([A-Za-z_][A-Za-z0-9_]*)=\$!$`)

// bgLineRe is a line a background command prints into the terminal,
// marked with its name: "connect address : ...    # serve".
var bgLineRe = regexp.MustCompile(`^(.*?)\s{2,}# ([a-z]+)$`)

// parseTranscript splits a console block into its commands. A line marked
// "# NAME" is one the last background "tcpkit NAME" printed meanwhile, as
// a terminal shows it.
func parseTranscript(t testing.TB, b docBlock) []*docCmd {
	t.Helper()
	var cmds []*docCmd
	for _, l := range b.text {
		if m := bgLineRe.FindStringSubmatch(l); m != nil {
			var bg *docCmd
			for _, c := range cmds {
				if c.background && strings.HasPrefix(c.line, "tcpkit "+m[2]+" ") {
					bg = c
				}
			}
			if bg == nil {
				t.Fatalf("%s: %q is marked as printed by %s, but no tcpkit %s runs in the background before it", b.where(), l, m[2], m[2])
			}
			bg.want = append(bg.want, m[1])
			continue
		}
		if rest, ok := strings.CutPrefix(l, "$ "); ok {
			c := &docCmd{line: rest}
			if s, ok := strings.CutSuffix(rest, " &"); ok {
				c.line, c.background = s, true
			} else if m := pidVarRe.FindStringSubmatch(rest); m != nil {
				c.line, c.background, c.pidVar = m[1], true, m[2] // "CMD & NAME=$!"
			}
			cmds = append(cmds, c)
			continue
		}
		if len(cmds) == 0 {
			t.Fatalf("%s: example %s starts with %q, not a $ command", b.where(), b.id, l)
		}
		c := cmds[len(cmds)-1]
		switch {
		case c.background:
			t.Fatalf("%s: %q runs in the background, yet %q follows it unmarked: mark the lines it prints with \"  # NAME\"", b.where(), c.line, l)
		case l == "^C":
			if c.interrupted {
				t.Fatalf("%s: two ^C after %q", b.where(), c.line)
			}
			c.interrupted = true
		case c.interrupted:
			c.after = append(c.after, l)
		default:
			c.want = append(c.want, l)
		}
	}
	return cmds
}

// Masks for what differs from run to run: times, dates, durations, PIDs
// and the client's ephemeral ports. Numbers of four digits or more are
// masked unless the commands name them (the server's port, say). The
// kernel's view of a socket in a trace line (state, RTT, bytes acked)
// depends on how the two sides' steps fell: it is masked whole.
var (
	docTCPInfoRe  = regexp.MustCompile(`\[[A-Z_0-9]+ rtt=[^]]*\]`)
	docTimeRe     = regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)`)
	docDurationRe = regexp.MustCompile(`\d+(\.\d+)?(ns|µs|us|ms|s|m|h)\b`)
	docDecimalRe  = regexp.MustCompile(`\d+\.\d+`)
	docBigRe      = regexp.MustCompile(`\d{4,}`)
	docPIDRe      = regexp.MustCompile(`\b\d+(/[A-Za-z])|(PID )\d+`) // ports' "856/tcpkit", "(PID 856)"
)

// docNormalizer masks one line for comparison; keep are the numbers the
// commands name, compared as they are. A load generator's figures differ
// in every run: with all, every number is masked, and the kernel's
// counter line whole.
type docNormalizer struct {
	keep map[string]bool
	all  bool
}

var docAnyNumberRe = regexp.MustCompile(`\d+(\.\d+)?( ?(ns|µs|us|ms|s|KiB|MiB|GiB|B)\b)?`)

func newDocNormalizer(cmds []*docCmd) docNormalizer {
	keep := map[string]bool{"5000": true} // serve's and connect's default
	for _, c := range cmds {
		for _, n := range docBigRe.FindAllString(c.line, -1) {
			keep[n] = true
		}
	}
	return docNormalizer{keep: keep}
}

func (d docNormalizer) line(s string) string {
	if d.all {
		if strings.HasPrefix(s, "kernel ") {
			return "kernel ..."
		}
		return strings.Join(strings.Fields(docAnyNumberRe.ReplaceAllString(s, "N")), " ")
	}
	s = docTCPInfoRe.ReplaceAllString(s, "[TCP_INFO]")
	s = docPIDRe.ReplaceAllString(s, "${2}N$1")
	s = docTimeRe.ReplaceAllString(s, "TIME")
	s = docDurationRe.ReplaceAllString(s, "D")
	s = docDecimalRe.ReplaceAllString(s, "N")
	s = docBigRe.ReplaceAllStringFunc(s, func(n string) string {
		if d.keep[n] {
			return n
		}
		return "N"
	})
	return strings.Join(strings.Fields(s), " ") // tables align to the widths of the numbers
}

// interleaves reports whether want is out and errs merged, each keeping
// its order: a terminal shows a command's standard output and error
// interleaved in an order the two writers do not fix.
func interleaves(want, out, errs []string) bool {
	if len(want) != len(out)+len(errs) {
		return false
	}
	// ok[i][j]: want[:i+j] is a merge of out[:i] and errs[:j].
	ok := make([][]bool, len(out)+1)
	for i := range ok {
		ok[i] = make([]bool, len(errs)+1)
	}
	ok[0][0] = true
	for i := 0; i <= len(out); i++ {
		for j := 0; j <= len(errs); j++ {
			if !ok[i][j] {
				continue
			}
			if i < len(out) && out[i] == want[i+j] {
				ok[i+1][j] = true
			}
			if j < len(errs) && errs[j] == want[i+j] {
				ok[i][j+1] = true
			}
		}
	}
	return ok[len(out)][len(errs)]
}

// checkTranscript fails the test unless a command printed what its
// transcript shows, modulo the masks and the interleaving of the streams.
func checkTranscript(t testing.TB, where string, d docNormalizer, c *docCmd, out, errs []string) {
	t.Helper()
	norm := func(ls []string) []string {
		r := make([]string, len(ls))
		for i, l := range ls {
			r[i] = d.line(l)
		}
		return r
	}
	want := append(slices.Clone(c.want), c.after...)
	if !interleaves(norm(want), norm(out), norm(errs)) {
		t.Errorf("%s: $ %s\nthe doc shows:\n  %s\nit printed on stdout:\n  %s\nand on stderr:\n  %s",
			where, c.line, strings.Join(want, "\n  "), strings.Join(out, "\n  "), strings.Join(errs, "\n  "))
	}
}

func TestInterleaves(t *testing.T) {
	tests := []struct {
		want, out, errs []string
		ok              bool
	}{
		{nil, nil, nil, true},
		{[]string{"a", "x", "b"}, []string{"a", "b"}, []string{"x"}, true},
		{[]string{"x", "a", "b"}, []string{"a", "b"}, []string{"x"}, true},
		{[]string{"b", "a"}, []string{"a", "b"}, nil, false},
		{[]string{"a", "a", "x"}, []string{"a"}, []string{"a", "x"}, true},
		{[]string{"a"}, []string{"a"}, []string{"x"}, false},
	}
	for _, tt := range tests {
		if got := interleaves(tt.want, tt.out, tt.errs); got != tt.ok {
			t.Errorf("interleaves(%q, %q, %q) = %v, want %v", tt.want, tt.out, tt.errs, got, tt.ok)
		}
	}
}

func TestDocNormalizer(t *testing.T) {
	d := newDocNormalizer([]*docCmd{{line: "tcpkit connect 7000"}})
	tests := []struct{ a, b string }{
		{"connect address : 127.0.0.1:33996", "connect address : 127.0.0.1:41002"},
		{"listen on port 7000", "listen on port 7000"},
		{"tcp6   [::]:5000     [::]:*  LISTEN  0  0  29052/tcpkit", "tcp6 [::]:5000 [::]:* LISTEN 0 0 1234/tcpkit"},
		{"  0.000491 #1 connected in 465µs", "  1.2 #1 connected in 3ms"},
		{"LISTEN  0  0  29052/tcpkit", "LISTEN 0 0 856/tcpkit"},
		{"in use by tcpkit (PID 4242)", "in use by tcpkit (PID 77)"},
	}
	for _, tt := range tests {
		if d.line(tt.a) != d.line(tt.b) {
			t.Errorf("%q and %q differ: %q, %q", tt.a, tt.b, d.line(tt.a), d.line(tt.b))
		}
	}
	for _, pair := range [][2]string{{"listen on port 7000", "listen on port 7001"}, {"3 open connections", "4 open connections"}} {
		if d.line(pair[0]) == d.line(pair[1]) {
			t.Errorf("%q and %q compare equal", pair[0], pair[1])
		}
	}
}

var (
	docLinkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	docHeadingRe = regexp.MustCompile(`(?m)^#+ (.*)$`)
)

// anchor is GitHub's id for a heading: lower case, spaces to dashes,
// punctuation dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Every link between the docs leads somewhere: the file exists, and the
// heading a #fragment names is in it.
func TestDocsLinks(t *testing.T) {
	for _, name := range docFiles(t) {
		page, err := os.ReadFile(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range docLinkRe.FindAllStringSubmatch(string(page), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			file := filepath.Join("../..", filepath.Dir(name), path)
			if path == "" {
				file = filepath.Join("../..", name)
			}
			body, err := os.ReadFile(file)
			if err != nil {
				if _, serr := os.Stat(file); serr == nil { // a directory
					continue
				}
				t.Errorf("%s: link %q: %v", name, target, err)
				continue
			}
			if frag == "" {
				continue
			}
			found := false
			for _, h := range docHeadingRe.FindAllStringSubmatch(string(body), -1) {
				if anchor(h[1]) == frag {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: link %q: no heading there has the id %q", name, target, frag)
			}
		}
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// tcpkit version and --version: the module's version, the commit it was
// built from, and the Go that built it, from the build information.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runTcpkit(t, args...)
		checkExit(t, "tcpkit "+args[0], code, exitOK)
		checkLines(t, "tcpkit "+args[0]+" stderr", errOut, nil)
		commit := `^commit [0-9a-f]{40}( \(.*\))?$`
		if fi, err := os.Stat("../../.git"); err == nil && !fi.IsDir() {
			// A git worktree (.git is a file): Go stamps no commit then.
			commit = `^commit (unknown|[0-9a-f]{40}( \(.*\))?)$`
		}
		if len(out) != 3 || !strings.HasPrefix(out[0], "tcpkit ") ||
			!regexp.MustCompile(commit).MatchString(out[1]) ||
			out[2] != runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("tcpkit %s printed %q, want the version, the commit, and %s", args[0], out, runtime.Version())
		}
	}
}

// A misspelt command or flag gets a guess; a duration without a unit
// says which unit to add; flags are named as they are typed, with --.
func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"conect"}, `tcpkit: unknown command "conect" (did you mean 'connect'? run 'tcpkit help' for the list)`},
		{[]string{"srve"}, `tcpkit: unknown command "srve" (did you mean 'serve'? run 'tcpkit help' for the list)`},
		{[]string{"xyzzy"}, `tcpkit: unknown command "xyzzy" (run 'tcpkit help' for the list)`},
		{[]string{"serve", "--prot", "5000"}, "tcpkit serve: unknown flag --prot (did you mean --port?) (run 'tcpkit serve -h' for help)"},
		{[]string{"connect", "--keep-open"}, "tcpkit connect: unknown flag --keep-open (run 'tcpkit connect -h' for help)"},
		{[]string{"connect", "--interval", "1", "5000"}, `tcpkit connect: --interval "1": a duration needs a unit: use 1s (or ms, m, h) (run 'tcpkit connect -h' for help)`},
		{[]string{"serve", "--idle-timeout", "soon"}, `tcpkit serve: --idle-timeout "soon" is not a duration: use, say, 1s, 500ms or 2m (run 'tcpkit serve -h' for help)`},
		{[]string{"serve", "--port"}, "tcpkit serve: --port needs a value (run 'tcpkit serve -h' for help)"},
		{[]string{"serve", "--keep-open=maybe"}, "tcpkit serve: --keep-open=maybe: use --keep-open or --keep-open=false (run 'tcpkit serve -h' for help)"},
	}
	for _, tt := range tests {
		code, out, errOut := runTcpkit(t, tt.args...)
		checkExit(t, strings.Join(tt.args, " "), code, exitUsage)
		checkLines(t, strings.Join(tt.args, " ")+" stdout", out, nil)
		checkLines(t, strings.Join(tt.args, " ")+" stderr", errOut, []string{tt.want})
	}
}

// The completion scripts: bash's completes commands, flags, bench's modes
// and files after a file flag, in a real bash; zsh's and fish's are
// valid scripts for their shells.
func TestCompletion(t *testing.T) {
	t.Parallel()
	bash := needPeer(t, "bash")
	dir := t.TempDir()
	script := filepath.Join(dir, "tcpkit.bash")
	code, out, _ := runTcpkit(t, "completion", "bash")
	checkExit(t, "completion bash", code, exitOK)
	if err := os.WriteFile(script, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "key.pem"), nil, 0o644)
	complete := func(words ...string) string {
		t.Helper()
		line := "source " + script + "; COMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" + itoa(len(words)-1) + "; _tcpkit; echo \"${COMPREPLY[*]}\""
		cmd := exec.Command(bash, "-c", line)
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"tcpkit", "con"}, "connect"},
		{[]string{"tcpkit", "c"}, "cert completion connect"},
		{[]string{"tcpkit", "serve", "--keep"}, "--keep-open"},
		{[]string{"tcpkit", "bench", "p"}, "pingpong"},
		{[]string{"tcpkit", "bench", "pingpong", "--rate"}, "--rate --rate-per-conn"},
		{[]string{"tcpkit", "serve", "--tls-key", "ke"}, "key.pem"},
		{[]string{"tcpkit", "completion", "f"}, "fish"},
	} {
		if got := complete(tt.words...); got != tt.want {
			t.Errorf("completing %q: got %q, want %q", tt.words, got, tt.want)
		}
	}

	for shell, check := range map[string][]string{"zsh": {"-n"}, "fish": {"--no-execute"}} {
		path := needPeer(t, shell)
		code, out, _ := runTcpkit(t, "completion", shell)
		checkExit(t, "completion "+shell, code, exitOK)
		f := filepath.Join(dir, "tcpkit."+shell)
		os.WriteFile(f, []byte(strings.Join(out, "\n")+"\n"), 0o644)
		if b, err := exec.Command(path, append(check, f)...).CombinedOutput(); err != nil {
			t.Errorf("%s does not accept its script: %v: %s", shell, err, b)
		}
	}
	if code, _, errOut := runTcpkit(t, "completion", "powershell"); code != exitUsage || len(errOut) != 1 {
		t.Errorf("completion powershell: exit %d, %q; want a usage error", code, errOut)
	}
}

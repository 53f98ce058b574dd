package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A flagSet is a command's flags plus its -h text: the command's
// description and examples, then the flags' own help from PrintDefaults.
type flagSet struct {
	*flag.FlagSet
	usage  string
	stdout io.Writer
}

// defined keeps the last flag set each command made, for completion,
// which asks every command for its flags by running it with -h.
var defined sync.Map // command name → *flag.FlagSet

func newFlagSet(name, usage string, stdout io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	defined.Store(name, fs)
	fs.SetOutput(io.Discard) // parse errors are reported by parse, in one line
	fs.Usage = func() {}     // the flag package calls it on errors too; -h is handled in parse
	return &flagSet{FlagSet: fs, usage: usage, stdout: stdout}
}

// parse parses args, which may mix flags and positional arguments
// ("connect 5000 --count 1"), and returns the positional ones. Everything
// after "--" is positional. A parse error is reported on stderr in one
// line; flag.ErrHelp means -h printed the usage.
func (fs *flagSet) parse(args []string, stderr io.Writer) ([]string, error) {
	var pos, rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(fs.stdout, fs.usage)
				fs.SetOutput(fs.stdout)
				fs.PrintDefaults()
				return nil, err
			}
			fmt.Fprintf(stderr, "tcpkit %s: %s (run 'tcpkit %s -h' for help)\n", fs.Name(), fs.explain(err), fs.Name())
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

var (
	undefinedFlagRe = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	badValueRe      = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-+(\S+): (.*)$`)
	needsValueRe    = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// explain rewrites the flag package's parse errors in the words of the
// other messages: flags as --name, a guess at a misspelt flag, and what a
// duration looks like.
func (fs *flagSet) explain(err error) string {
	msg := err.Error()
	if m := undefinedFlagRe.FindStringSubmatch(msg); m != nil {
		s := "unknown flag --" + m[1]
		if guess := closest(m[1], fs.names()); guess != "" {
			s += " (did you mean --" + guess + "?)"
		}
		return s
	}
	if m := needsValueRe.FindStringSubmatch(msg); m != nil {
		return "--" + m[1] + " needs a value"
	}
	if m := badValueRe.FindStringSubmatch(msg); m != nil {
		value, name := m[1], m[2]
		var v any
		if f := fs.Lookup(name); f != nil {
			if g, ok := f.Value.(flag.Getter); ok {
				v = g.Get()
			}
		}
		switch v.(type) {
		case time.Duration:
			if _, err := strconv.ParseFloat(value, 64); err == nil {
				return fmt.Sprintf("--%s %q: a duration needs a unit: use %ss (or ms, m, h)", name, value, value)
			}
			return fmt.Sprintf("--%s %q is not a duration: use, say, 1s, 500ms or 2m", name, value)
		case int, int64, uint, uint64:
			return fmt.Sprintf("--%s %q is not a whole number", name, value)
		case float64:
			return fmt.Sprintf("--%s %q is not a number", name, value)
		case bool:
			return fmt.Sprintf("--%s=%s: use --%s or --%s=false", name, value, name, name)
		}
		if strings.HasPrefix(m[3], strconv.Quote(value)) { // the value's own message names it
			return "--" + name + " " + m[3]
		}
		return fmt.Sprintf("--%s %q: %s", name, value, m[3])
	}
	return msg
}

// names returns the names of fs's flags.
func (fs *flagSet) names() []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// closest returns the name in names nearest to s, if it is near enough to
// be what was meant: at most two edits away, or one for a short name; or
// one that s is a prefix of.
func closest(s string, names []string) string {
	best, bestDist := "", 3
	if len(s) <= 3 {
		bestDist = 2
	}
	for _, n := range names {
		d := editDistance(s, n)
		if strings.HasPrefix(n, s) && len(s) >= 3 {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// usageError reports a bad argument in one line and returns exitUsage.
func usageError(stderr io.Writer, cmd, format string, a ...any) int {
	fmt.Fprintf(stderr, "tcpkit %s: %s (run 'tcpkit %s -h' for help)\n", cmd, fmt.Sprintf(format, a...), cmd)
	return exitUsage
}

// flagExit turns a parse error into the exit code: 0 for -h.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// A flagSet is a command's flags plus its -h text: the command's
// description and examples, then the flags' own help from PrintDefaults.
type flagSet struct {
	*flag.FlagSet
	usage  string
	stdout io.Writer
}

func newFlagSet(name, usage string, stdout io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
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
			fmt.Fprintf(stderr, "tcpkit %s: %v (run 'tcpkit %s -h' for help)\n", fs.Name(), err, fs.Name())
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
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

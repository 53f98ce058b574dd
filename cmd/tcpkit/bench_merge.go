package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"tcpkit/internal/bench"
)

const benchMergeUsage = `Usage: tcpkit bench merge [--json] RESULT.json RESULT.json...

Add up the --json results of runs made at the same time from several
machines, as one load: counts and rates add, the latency histograms
merge, so the percentiles are those of all the exchanges together. One
run given twice is refused: its counts would count twice.

Flags:
`

// benchMerge adds up results from several machines.
func benchMerge(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench merge", benchMergeUsage, stdout)
	jsonOut := fs.Bool("json", false, "print the merged result as JSON instead of the summary")
	files, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(files) < 2 {
		return usageError(stderr, "bench merge", "give two or more result files (from tcpkit bench --json)")
	}
	var results []*bench.Result
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "tcpkit bench merge: cannot read %s: %s\n", name, explainOpen(err))
			return exitFail
		}
		res, err := bench.ReadResult(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "tcpkit bench merge: %s is not a tcpkit bench --json result: %v\n", name, err)
			return exitFail
		}
		results = append(results, res)
	}
	m, err := bench.Merge(results)
	var same *bench.SameRunError
	switch {
	case errors.As(err, &same):
		return usageError(stderr, "bench merge", "%s and %s are the same run (the same window and histogram): merge adds up runs made at the same time from different machines", files[same.A], files[same.B])
	case err != nil:
		fmt.Fprintf(stderr, "tcpkit bench merge: %v\n", err)
		return exitFail
	}
	if *jsonOut {
		m.WriteJSON(stdout)
	} else {
		m.WriteText(stdout)
	}
	return exitOK
}

// explainOpen says why a file cannot be opened, with the errno's name.
func explainOpen(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return "no such file"
	}
	if errno, name := errnoOf(err); name != "" {
		return fmt.Sprintf("%v (%s)", errno, name)
	}
	return err.Error()
}

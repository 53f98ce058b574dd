package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// versionCmd prints what the binary is: the module's version, the commit
// it was built from (with its time, and whether the tree had changes),
// and the Go that built it; all from the build information Go embeds.
func versionCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "Usage: tcpkit version\n\nPrint tcpkit's version, the commit it was built from, and the Go version.\n\nFlags:\n", stdout)
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 {
		return usageError(stderr, "version", "unexpected argument %q", pos[0])
	}
	fmt.Fprint(stdout, versionText())
	return exitOK
}

// versionText is three lines: the module and its version, the commit,
// and the Go version and platform.
func versionText() string {
	version, revision, when, modified := "unknown", "unknown", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		version = bi.Main.Version // "(devel)" when built from a clone
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	commit := "commit " + revision
	switch {
	case when != "" && modified:
		commit += " (" + when + ", with uncommitted changes)"
	case when != "":
		commit += " (" + when + ")"
	}
	return fmt.Sprintf("tcpkit %s\n%s\n%s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

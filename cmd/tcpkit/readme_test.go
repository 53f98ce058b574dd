package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// The README's flag reference is each command's -h output: this keeps the
// two from drifting apart (the help text is written once, in the flag
// definitions).
func TestReadmeHasEachCommandsFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "connect", "ports", "bench"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{cmd, "-h"}, &out, &errOut); code != exitOK {
			t.Fatalf("%s -h exited %d: %s", cmd, code, errOut.String())
		}
		flags := out.String()[strings.Index(out.String(), "Flags:\n"):]
		if !bytes.Contains(readme, []byte("```\n"+flags+"```\n")) {
			t.Errorf("README.md lacks the current flags of %s; paste the Flags: part of 'tcpkit %s -h':\n%s", cmd, cmd, flags)
		}
	}
}

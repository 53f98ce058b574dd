package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateFlags = flag.Bool("update-flags", false, "rewrite the Flags sections of docs/*.md from each command's -h")

// flagPages is where each command's flags are listed: the page's last
// section, "## Flags", is the Flags part of its -h.
var flagPages = map[string]string{
	"serve":   "serve.md",
	"connect": "connect.md",
	"bench":   "bench.md",
	"ports":   "ports.md",
	"cert":    "tls-and-proxy.md",
	"watch":   "watch.md",
	"relay":   "relay.md",
}

var flagsSectionRe = regexp.MustCompile("(?s)\n## Flags\n.*$")

// The docs' flag reference is each command's -h output, so the two cannot
// drift apart: the help is written once, in the flag definitions. Run
// "go test -run TestDocsHaveEachCommandsFlags -update-flags" after
// changing a flag.
func TestDocsHaveEachCommandsFlags(t *testing.T) {
	for cmd, page := range flagPages {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{cmd, "-h"}, &out, &errOut); code != exitOK {
			t.Fatalf("%s -h exited %d: %s", cmd, code, errOut.String())
		}
		_, flags, _ := strings.Cut(out.String(), "\nFlags:\n")
		want := "\n## Flags\n\n`tcpkit " + cmd + " -h` lists them, as here:\n\n```\n" + flags + "```\n"
		path := "../../docs/" + page
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got := flagsSectionRe.Find(doc)
		if string(got) == want {
			continue
		}
		if *updateFlags {
			doc = append(flagsSectionRe.ReplaceAll(doc, nil), want...)
			if !flagsSectionRe.Match(doc) {
				doc = append(bytes.TrimRight(doc, "\n"), []byte("\n"+want)...)
			}
			if err := os.WriteFile(path, doc, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("docs/%s does not end with the Flags of 'tcpkit %s -h': run go test -run TestDocsHaveEachCommandsFlags -update-flags", page, cmd)
	}
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// watchChromiumDOM renders url in headless Chromium and returns the DOM
// once the page's scripts have run (--dump-dom). Chromium is the Debian
// package; it is run without the services that would reach the network.
func watchChromiumDOM(t *testing.T, url string) string {
	t.Helper()
	bin := needPeer(t, "chromium")
	p := start(t, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url)
	if code := p.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("chromium --dump-dom %s: exit %d; stderr %q", url, code, p.stderr.all())
	}
	return strings.Join(p.stdout.all(), "\n")
}

// The page of --html, rendered by a real browser: one arrow per segment
// with its label, the addresses over the bars, and the details of the
// segment the URL's fragment selects: the page clicks that arrow, so the
// click handler itself fills the panel.
// The page loads nothing from the network.
func TestWatchHTMLInChromium(t *testing.T) {
	_, port := serve(t)
	page := filepath.Join(t.TempDir(), "run.html")
	w := startWatch(t, port, "--html", page)
	c := dial(t, port)
	write(t, c, "testing~")
	readAll(t, c)
	c.Close()
	waitNote(t, w, "4-way close 4/4")
	ladder, _ := stopWatch(t, w)
	rs := rungs(t, ladder)

	src, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if rest := strings.ReplaceAll(string(src), `xmlns="http://www.w3.org/2000/svg"`, ""); regexp.MustCompile(`(?i)https?:|//[a-z]|src=|<link`).MatchString(rest) {
		t.Errorf("the page refers to something outside it: %q", regexp.MustCompile(`(?i).{0,40}(https?:|//[a-z]|src=|<link).{0,40}`).FindString(rest))
	}

	dom := watchChromiumDOM(t, "file://"+page+"#c1s4")
	arrows := regexp.MustCompile(`<g class="seg (\w+)( selected)?" id="(c1s\d+)"`).FindAllStringSubmatch(dom, -1)
	if len(arrows) != len(rs) {
		t.Fatalf("the rendered page has %d arrows, the ladder %d:\n%s", len(arrows), len(rs), dom)
	}
	labels := regexp.MustCompile(`<text class="label"[^>]*>([^<]*)</text>`).FindAllStringSubmatch(dom, -1)
	for i, r := range rs {
		if i >= len(labels) || strings.ReplaceAll(labels[i][1], "&quot;", `"`) != r.label {
			t.Errorf("arrow %d's label in the page %q, on the terminal %q", i+1, labels[min(i, len(labels)-1)][1], r.label)
		}
	}
	for _, want := range []string{
		`<text class="addr"`, "127.0.0.1:" + itoa(port),
		`<g class="seg data selected" id="c1s4"`, // the fragment selected the client's data
		`<div id="details" data-seg="c1s4"><dl>`,
		`<dt>flags</dt><dd>PSH-ACK</dd>`, `<dt>payload</dt><dd>8 bytes</dd>`,
		`<dt>direction</dt><dd>client → server (127.0.0.1:`,
		`3-way handshake 1/3: the client asks to connect (SYN)`,
		`4-way close 4/4: the server acknowledges the client's FIN`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("rendered DOM:\n%s", dom)
	}
}

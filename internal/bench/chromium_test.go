package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Headless chromium, to render the report as a browser does. Only the
// tests of this package use it.

// needChromium returns the chromium binary. Without one the test is
// skipped, unless $CI is set: there a missing peer fails.
func needChromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is needed for this test in CI (Debian package chromium)")
	}
	t.Skip("chromium not found, skipping")
	return ""
}

// chromiumDOM loads the file at path in headless chromium and returns the
// DOM it rendered, serialized. The flags keep it off the network: without
// the background-networking ones it waits on this closed network.
func chromiumDOM(t testing.TB, path string) string {
	t.Helper()
	bin := needChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+path)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second // a helper process holding the pipes must not hang the test
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom %s: %v; stderr:\n%s", path, err, errOut.String())
	}
	return out.String()
}

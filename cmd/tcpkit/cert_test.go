package main

import (
	"bytes"
	"crypto/tls"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// ctFiles returns the names in dir, sorted: what cert left there.
func ctFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// ctCheckPair checks that dir holds cert.pem (0644) and key.pem (0600) as
// regular files that make a TLS pair, and nothing else.
func ctCheckPair(t *testing.T, dir string) {
	t.Helper()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, mode := range map[string]fs.FileMode{cert: 0o644, key: 0o600} {
		fi, err := os.Lstat(f)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want a regular file with mode %v", f, fi.Mode(), mode)
		}
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		t.Errorf("the files written are not a TLS pair: %v", err)
	}
	checkLines(t, "the files in "+dir, ctFiles(t, dir), []string{"cert.pem", "key.pem"})
}

// cert writes new files only: it makes --out (0700) when missing,
// refuses to touch existing files, symlinks above all, without --force,
// and with --force replaces them, never writing through a symlink. The
// key is 0600 whatever was there before.
func TestCertFilesCLI(t *testing.T) {
	t.Parallel()
	wrote := func(dir string) []string {
		return []string{"wrote " + filepath.Join(dir, "cert.pem") + " and " + filepath.Join(dir, "key.pem") + " for localhost, 127.0.0.1, ::1"}
	}
	exists := func(f string) []string {
		return []string{"tcpkit cert: " + f + " already exists: nothing written; replace it with --force, or write elsewhere with --out"}
	}

	t.Run("makes --out", func(t *testing.T) {
		t.Parallel()
		top := filepath.Join(t.TempDir(), "tls")
		dir := filepath.Join(top, "new")
		code, out, errOut := runTcpkit(t, "cert", "--out", dir)
		checkExit(t, "cert --out a missing directory", code, exitOK)
		checkLines(t, "its stdout", out, wrote(dir))
		checkLines(t, "its stderr", errOut, nil)
		ctCheckPair(t, dir)
		for _, d := range []string{top, dir} {
			if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %v, %v; want a directory made with mode 0700", d, fi.Mode(), err)
			}
		}
	})

	t.Run("refuses existing files", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if code, _, _ := runTcpkit(t, "cert", "--out", dir); code != exitOK {
			t.Fatalf("the first cert exited %d", code)
		}
		certBefore, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
		keyBefore, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
		code, out, errOut := runTcpkit(t, "cert", "--out", dir)
		checkExit(t, "cert over an existing pair", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, exists(filepath.Join(dir, "cert.pem")))
		certAfter, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
		keyAfter, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
		if !bytes.Equal(certBefore, certAfter) || !bytes.Equal(keyBefore, keyAfter) {
			t.Errorf("cert changed the files it refused to replace")
		}
		ctCheckPair(t, dir)

		// --force replaces both.
		code, out, errOut = runTcpkit(t, "cert", "--out", dir, "--force")
		checkExit(t, "cert --force", code, exitOK)
		checkLines(t, "its stdout", out, wrote(dir))
		checkLines(t, "its stderr", errOut, nil)
		keyForced, _ := os.ReadFile(filepath.Join(dir, "key.pem"))
		if bytes.Equal(keyBefore, keyForced) {
			t.Errorf("cert --force left the old key")
		}
		ctCheckPair(t, dir)
	})

	t.Run("symlink", func(t *testing.T) {
		t.Parallel()
		dir, elsewhere := t.TempDir(), t.TempDir()
		target := filepath.Join(elsewhere, "x")
		if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(dir, "key.pem")
		if err := os.Symlink(target, key); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runTcpkit(t, "cert", "--out", dir)
		checkExit(t, "cert with key.pem a symlink", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, exists(key))
		checkLines(t, "the files in "+dir, ctFiles(t, dir), []string{"key.pem"})

		code, _, errOut = runTcpkit(t, "cert", "--out", dir, "--force")
		checkExit(t, "cert --force with key.pem a symlink", code, exitOK)
		checkLines(t, "its stderr", errOut, nil)
		ctCheckPair(t, dir) // key.pem is now a regular file of its own
		if b, err := os.ReadFile(target); err != nil || string(b) != "precious\n" {
			t.Errorf("the symlink's target holds %q, %v; want it untouched", b, err)
		}
		if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("the symlink's target: %v, %v; want it untouched, 0644", fi.Mode(), err)
		}
	})

	t.Run("dangling symlink", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "not-yet")
		cert := filepath.Join(dir, "cert.pem")
		if err := os.Symlink(target, cert); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runTcpkit(t, "cert", "--out", dir)
		checkExit(t, "cert with cert.pem a dangling symlink", code, exitFail)
		checkLines(t, "its stderr", errOut, exists(cert))
		if _, err := os.Lstat(target); err == nil {
			t.Errorf("cert created the dangling symlink's target %s", target)
		}
	})

	t.Run("an old 0644 key", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runTcpkit(t, "cert", "--out", dir, "--force")
		checkExit(t, "cert --force over a 0644 key", code, exitOK)
		checkLines(t, "its stderr", errOut, nil)
		ctCheckPair(t, dir)
	})

	t.Run("--out not a directory", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runTcpkit(t, "cert", "--out", file)
		checkExit(t, "cert --out a file", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit cert: --out " + file + " is not a directory"})
	})

	t.Run("cannot make --out", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(file, "sub")
		code, _, errOut := runTcpkit(t, "cert", "--out", dir)
		checkExit(t, "cert --out under a file", code, exitFail)
		checkLines(t, "its stderr", errOut, []string{"tcpkit cert: --out " + dir + ": not a directory (ENOTDIR)"})
	})
}

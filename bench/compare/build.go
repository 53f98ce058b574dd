package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// binaries are the programs one comparison runs, built fresh into dir.
type binaries struct {
	dir        string
	tcpkit     string // tcpkit, from the parent module
	naive      string // servers/naive
	gnet       string // servers/gnet
	cServer    string // servers/c/server.c
	cGen       string // servers/c/gen.c
	node       string // node on the PATH
	nodeScript string // the parent module's testdata/node/seed-server.js
	cert, key  string // a certificate and key from tcpkit cert, for the TLS servers
	sock       string // the Unix socket path of the Unix server
}

// findBenchDir returns the directory of this module (tcpkit/bench): the
// working directory, one of its parents, or a bench/ beside one of them.
func findBenchDir() (string, error) {
	isBench := func(dir string) bool {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			return false
		}
		for line := range strings.Lines(string(data)) {
			if strings.TrimSpace(line) == "module tcpkit/bench" {
				return true
			}
		}
		return false
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isBench(dir) {
			return dir, nil
		}
		if isBench(filepath.Join(dir, "bench")) {
			return filepath.Join(dir, "bench"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the tcpkit/bench module: run from tcpkit/bench")
		}
		dir = parent
	}
}

// build compiles every program into a new temporary directory.
func build(ctx context.Context, benchDir string) (*binaries, error) {
	dir, err := os.MkdirTemp("", "tcpkit-compare-")
	if err != nil {
		return nil, err
	}
	root := filepath.Dir(benchDir)
	b := &binaries{
		dir:        dir,
		tcpkit:     filepath.Join(dir, "tcpkit"),
		naive:      filepath.Join(dir, "naive"),
		gnet:       filepath.Join(dir, "gnet"),
		cServer:    filepath.Join(dir, "c-server"),
		cGen:       filepath.Join(dir, "c-gen"),
		nodeScript: filepath.Join(root, "testdata", "node", "seed-server.js"),
	}
	steps := []struct {
		wd   string
		args []string
	}{
		{root, []string{"go", "build", "-o", b.tcpkit, "./cmd/tcpkit"}},
		{benchDir, []string{"go", "build", "-o", b.naive, "./servers/naive"}},
		{benchDir, []string{"go", "build", "-o", b.gnet, "./servers/gnet"}},
		{benchDir, []string{"gcc", "-O2", "-Wall", "-Wextra", "-o", b.cServer, "servers/c/server.c"}},
		{benchDir, []string{"gcc", "-O2", "-Wall", "-Wextra", "-o", b.cGen, "servers/c/gen.c"}},
	}
	for _, s := range steps {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cmd := exec.CommandContext(bctx, s.args[0], s.args[1:]...)
		cmd.Dir = s.wd
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%s (in %s): %v\n%s", strings.Join(s.args, " "), s.wd, err, out)
		}
		if len(out) > 0 { // compiler warnings: show them, they matter here
			fmt.Fprintf(os.Stderr, "%s:\n%s", strings.Join(s.args, " "), out)
		}
	}
	b.cert, b.key, b.sock = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "s.sock")
	if out, err := exec.CommandContext(ctx, b.tcpkit, "cert", "--out", dir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("tcpkit cert: %v\n%s", err, out)
	}
	if b.node, err = exec.LookPath("node"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("node is needed for the Node server: %w", err)
	}
	if _, err := os.Stat(b.nodeScript); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// hasBench reports whether the tcpkit binary has the bench command.
func (b *binaries) hasBench() bool {
	out, _ := exec.Command(b.tcpkit, "help").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "bench" {
			return true
		}
	}
	return false
}

// versions describes the toolchains, for the report.
func versions() []string {
	run := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
		if err != nil {
			return "unknown"
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return first
	}
	return []string{
		"Go: " + run("go", "version"),
		"Node: " + run("node", "--version"),
		"gcc: " + run("gcc", "--version"),
		"kernel: " + run("uname", "-srm"),
	}
}

// cpuModel reads the first model name in /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// docRunners run the examples of the docs, each by its id: what the
// example needs around it (a server, a client in another terminal), then
// its transcript. See docs_linux_test.go.
var docRunners = map[string]func(r *docRun){
	"readme-serve": func(r *docRun) {
		srv := r.server("readme-serve", 2)
		r.session("readme-connect")
		srv.interrupt(r.t)
	},
	"readme-connect":   func(r *docRun) {}, // with readme-serve
	"readme-keep-open": func(r *docRun) { r.session("readme-keep-open") },
	"readme-ports": func(r *docRun) {
		r.background("tcpkit serve", "listen on port 5000")
		r.runCode("tcpkit connect", exitBroken)
		r.session("readme-ports")
	},
	"serve-seed": func(r *docRun) {
		srv := r.server("serve-seed", 2)
		r.run("tcpkit connect --count 1")
		srv.interrupt(r.t)
	},
	"serve-errors": func(r *docRun) {
		r.background("tcpkit serve --port 5000 --quiet", "listen on port 5000")
		r.session("serve-errors")
	},
	"ports-established": func(r *docRun) {
		r.background("tcpkit serve --keep-open", "listen on port 5000")
		r.background("tcpkit connect --interval 1h", "receive: test")
		r.session("ports-established")
	},
	"ports-time-wait": func(r *docRun) {
		r.background("tcpkit serve", "listen on port 5000")
		// The seed's client ends only after the server's FIN, so only the
		// server's side waits in TIME_WAIT; then its next send fails.
		r.runCode("tcpkit connect", exitBroken)
		r.session("ports-time-wait")
	},
	"trace-server": func(r *docRun) {
		srv := r.server("trace-server", 2)
		r.session("trace-client")
		srv.interrupt(r.t)
	},
	"trace-client": func(r *docRun) {}, // with trace-server
	"deploy-log-json": func(r *docRun) {
		srv := r.server("deploy-log-json", 1)
		r.run("tcpkit connect --count 1")
		srv.interrupt(r.t)
	},
	"deploy-proxy-server": func(r *docRun) {
		srv := r.server("deploy-proxy-server", 2)
		r.session("deploy-proxy-client")
		srv.interrupt(r.t)
	},
	"deploy-proxy-client": func(r *docRun) {}, // with deploy-proxy-server
	"engines-tls-proxy-server": func(r *docRun) {
		r.run("tcpkit cert --out tls")
		srv := r.server("engines-tls-proxy-server", 2)
		r.session("engines-tls-proxy-client")
		srv.interrupt(r.t)
	},
	"engines-tls-proxy-client": func(r *docRun) {}, // with engines-tls-proxy-server
	"exec-tcpserver":           func(r *docRun) { needPeer(r.t, "ncat"); r.session("exec-tcpserver") },
	"exec-missing":             func(r *docRun) { r.session("exec-missing") },
	"exec-after-fin":           func(r *docRun) { r.session("exec-after-fin") },
	"exec-grace-client":        func(r *docRun) {}, // with exec-grace-server
	"exec-grace-server": func(r *docRun) {
		srv := r.server("exec-grace-server", 2)
		r.session("exec-grace-client")
		srv.interrupt(r.t)
	},
	"connect-count":         func(r *docRun) { r.session("connect-count") },
	"connect-empty-message": func(r *docRun) { r.session("connect-empty-message") },
	"connect-checks":        func(r *docRun) { r.session("connect-checks") },
	"proxy-header":          func(r *docRun) { r.session("proxy-header") },
	"proxy-pieces":          func(r *docRun) { r.session("proxy-pieces") },
	"tls-serve":             func(r *docRun) { r.session("tls-serve") },
	"tls-sni":               func(r *docRun) { r.session("tls-sni") },
	"tls-client-cert":       func(r *docRun) { r.session("tls-client-cert") },
	"tls-timeout":           func(r *docRun) { r.session("tls-timeout") },
	"cert-files":            func(r *docRun) { r.session("cert-files") },
	// docs/bench.md is one session: the servers its first block starts
	// serve the examples of the blocks after it.
	"bench-servers": func(r *docRun) {
		r.session("bench-servers")
		r.numbers = true
		for _, id := range benchDocBlocks {
			r.session(id)
		}
	},
	"bench-pingpong":     func(r *docRun) {}, // with bench-servers
	"bench-oneshot":      func(r *docRun) {}, // with bench-servers
	"bench-stream":       func(r *docRun) {}, // with bench-servers
	"bench-idle":         func(r *docRun) {}, // with bench-servers
	"bench-refused":      func(r *docRun) {}, // with bench-servers
	"bench-expect-exact": func(r *docRun) {}, // with bench-servers
	"bench-message-file": func(r *docRun) {}, // with bench-servers
	"bench-ramp":         func(r *docRun) {}, // with bench-servers
	"bench-merge":        func(r *docRun) {}, // with bench-servers
	"bench-report":       func(r *docRun) {}, // with bench-servers
	"bench-tls":          func(r *docRun) {}, // with bench-servers
	"bench-fdlimit":      func(r *docRun) {}, // with bench-servers
	"connect-seed": func(r *docRun) {
		r.background("tcpkit serve", "listen on port 5000")
		r.session("connect-seed")
	},
	"netcat-pipe": func(r *docRun) { r.session("netcat-pipe") },
	"netcat-listen": func(r *docRun) {
		srv := r.startBlock("netcat-listen", 1)
		r.session("netcat-listen-client")
		if code := srv.finish(r.t); code != exitOK {
			r.t.Errorf("serve - exited %d, want 0", code)
		}
	},
	"netcat-listen-client": func(r *docRun) {}, // with netcat-listen
	"netcat-scan":          func(r *docRun) { r.session("netcat-scan") },
	"netcat-lines":         func(r *docRun) { r.session("netcat-lines") },
	"netcat-hex":           func(r *docRun) { r.session("netcat-hex") },
	"netcat-unix":          func(r *docRun) { r.session("netcat-unix") },
	"watch-seed-ladder":    withTestdata("watch-seed-ladder"),
	"watch-epipe-ladder":   withTestdata("watch-epipe-ladder"),
	"relay-seed":           func(r *docRun) { r.session("relay-seed") },
	"relay-refused":        func(r *docRun) { r.session("relay-refused") },
	"relay-hex":            func(r *docRun) { r.session("relay-hex") },
	"relay-proxy":          func(r *docRun) { r.session("relay-proxy") },
	"relay-trace": func(r *docRun) {
		r.background("tcpkit serve", "listen on port 5000")
		srv := r.server("relay-trace", 1)
		r.session("relay-trace-client")
		srv.interrupt(r.t)
	},
	"relay-trace-client": func(r *docRun) {}, // with relay-trace
	"relay-latency": func(r *docRun) {
		r.numbers = true
		r.session("relay-latency")
		// The numbers the transcript masks: 100 ms more per round trip.
		out, _ := r.run("tcpkit bench pingpong -c 1 -d 1s --json 6000 | jq .latency_us.p50")
		if p50, err := strconv.ParseFloat(strings.Join(out, ""), 64); err != nil || p50 < 95000 || p50 > 140000 {
			r.t.Errorf("through --latency 50ms the median round trip is %q µs, want about 100000", out)
		}
	},
	"relay-control": func(r *docRun) { needPeer(r.t, "curl"); r.session("relay-control") },
	"deploy-reuseport": func(r *docRun) {
		r.session("deploy-reuseport")
		for _, dp := range r.bg {
			dp.p.stdout.waitLine(r.t, "listen on port 5000", waitFor)
		}
	},
}

// benchDocBlocks are the examples of docs/bench.md after its servers'.
var benchDocBlocks = []string{"bench-pingpong", "bench-oneshot", "bench-stream", "bench-idle", "bench-refused", "bench-expect-exact", "bench-message-file", "bench-ramp", "bench-merge", "bench-report", "bench-tls", "bench-fdlimit"}

// withTestdata runs block id's session in a directory holding a copy of
// the repository's testdata, which its commands read.
func withTestdata(id string) func(r *docRun) {
	return func(r *docRun) {
		r.run("cp -r " + repoPath(r.t, "testdata") + " testdata")
		r.session(id)
	}
}

// repoPath is the absolute path of a file of the repository, for a
// command run in the examples' directory.
func repoPath(t testing.TB, name string) string {
	p, err := filepath.Abs(filepath.Join("../..", name))
	if err != nil {
		panic(err) // the working directory is gone
	}
	return p
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// bench loads servers over TLS, with a PROXY header, and over a Unix
// socket, on both engines, in every mode: each run makes exchanges with
// no error, idle holds every connection and reads the server's memory,
// and a PROXY header sent with pingpong's fast generator claims the
// client's own address (serve prints it).
func TestBenchTransportsCLI(t *testing.T) {
	t.Parallel()
	cert, key := soCert(t)
	forEachCLIEngine(t, func(t *testing.T, engine string) {
		type transport struct {
			name  string
			serve []string // serve's flags for it
			bench []string // bench's
		}
		sock := ncSocketPath(t)
		for _, tr := range []transport{
			{"tls", []string{"--tls-cert", cert, "--tls-key", key}, []string{"--tls", "--ca", cert}},
			// idle connects from 127.0.0.2 and up, so that ports do not run out
			{"proxy", []string{"--proxy-protocol", "--proxy-protocol-from", "127.0.0.0/8"}, []string{"--send-proxy", "v2"}},
			{"unix", []string{"--unix", sock}, []string{"--unix", sock}},
		} {
			for _, mode := range []string{"oneshot", "pingpong", "stream", "idle"} {
				t.Run(tr.name+"/"+mode, func(t *testing.T) {
					args := append([]string{"--engine", engine, "--quiet"}, tr.serve...)
					bargs := append([]string{mode, "-c", "4", "-d", "500ms", "--json"}, tr.bench...)
					switch mode {
					case "pingpong":
						args = append(args, "--keep-open")
						bargs = append(bargs, "--expect", "test")
					case "oneshot":
						bargs = append(bargs, "--expect", "test")
					case "stream":
						args = append(args, "--mode", "echo")
						bargs = append(bargs, "--echo")
					}
					var srv *proc
					if tr.name == "unix" {
						srv = ncServeUnixArgs(t, sock, engine, args...)
					} else {
						var port int
						srv, port = serve(t, args...)
						bargs = append(bargs, addr(port))
					}
					if mode == "idle" {
						bargs = append(bargs, "--server-pid", itoa(srv.cmd.Process.Pid))
					}
					code, out, errOut, _ := runBench(t, 4*waitFor, bargs...)
					checkExit(t, "bench "+strings.Join(bargs, " "), code, exitOK)
					checkLines(t, "bench stderr", errOut, nil)
					res := parseBench(t, out)
					if res.Exchanges == 0 || len(res.errorsBut()) > 0 {
						t.Errorf("bench made %d exchanges, errors %v; want some and none", res.Exchanges, res.errorsBut())
					}
					if mode == "idle" {
						var mem struct {
							KiB *float64 `json:"server_kib_per_conn"`
						}
						json.Unmarshal([]byte(strings.Join(out, "\n")), &mem)
						if res.Held != 4 || mem.KiB == nil {
							t.Errorf("idle held %d of 4 connections, server memory %v; want all held and the memory read", res.Held, mem.KiB)
						}
					}
					lines := stop(t, srv)
					if tr.name == "proxy" && mode == "pingpong" {
						for _, l := range lines {
							if a, ok := strings.CutPrefix(l, "connect address : "); ok && !strings.HasPrefix(a, "127.0.0.1:") {
								t.Errorf("serve printed %q, want the client's own address, which the header claims", l)
							}
						}
					}
				})
			}
		}
	})
}

// ncServeUnixArgs starts serve on the Unix socket at path with args, on
// engine, and waits for its listen lines.
func ncServeUnixArgs(t testing.TB, path, engine string, args ...string) *proc {
	t.Helper()
	srv := startTcpkit(t, append([]string{"serve", "--unix", path}, args...)...)
	srv.waitLine(t, "listen on "+path, waitFor)
	srv.stderr.take(t, "tcpkit serve: listening on unix:"+path+" ("+engineName(engine)+" engine)", waitFor)
	return srv
}

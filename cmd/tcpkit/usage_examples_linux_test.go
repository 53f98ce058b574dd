package main

// Every example a command's -h shows runs here as written, in a network
// namespace of its own, beside what it needs (a server for a client's
// example, a client for a server's), and must do what the help says it
// does: exit 0, or run until Ctrl-C and then exit 0.

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// usageExamples returns the example command lines of cmd's -h: the lines
// of its "Examples:" section, each without the description after it.
func usageExamples(t testing.TB, cmd string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{cmd, "-h"}, &out, &errOut); code != exitOK {
		t.Fatalf("%s -h exited %d: %s", cmd, code, errOut.String())
	}
	_, section, ok := strings.Cut(out.String(), "\nExamples:\n")
	if !ok {
		return nil
	}
	section, _, _ = strings.Cut(section, "\n\n")
	var lines []string
	for _, l := range strings.Split(section, "\n") {
		l = strings.TrimSpace(l)
		if i := regexp.MustCompile(`\s{2,}`).FindStringIndex(l); i != nil {
			l = l[:i[0]] // the description after two spaces or more
		}
		lines = append(lines, l)
	}
	return lines
}

// untilCtrlC runs line until it printed n lines, then sends the Ctrl-C
// the help says ends it, and checks that it exits 0.
func (r *docRun) untilCtrlC(line string, n int) []string {
	r.t.Helper()
	dp := r.start(&docCmd{line: line}, docBlock{file: "(-h example)"}, docNormalizer{})
	dp.waitLines(r.t, n)
	syscall.Kill(-dp.p.cmd.Process.Pid, syscall.SIGINT)
	if code := dp.p.wait(r.t, waitFor); code != exitOK {
		r.t.Errorf("$ %s exited %d after Ctrl-C, want 0: %s", line, code, dp.p.describe())
	}
	return dp.p.stdout.all()
}

// serveExample starts a serve example, checks that client gets want from
// it, and stops it with Ctrl-C.
func (r *docRun) serveExample(line, client, want string) {
	r.t.Helper()
	srv := r.start(&docCmd{line: line}, docBlock{file: "(-h example)"}, docNormalizer{})
	srv.waitLines(r.t, 2) // the listen lines
	out, _ := r.run(client)
	if got := strings.Join(out, "\n"); got != want {
		r.t.Errorf("$ %s\nagainst $ %s: printed %q, want %q", client, line, got, want)
	}
	syscall.Kill(-srv.p.cmd.Process.Pid, syscall.SIGINT)
	if code := srv.p.wait(r.t, waitFor); code != exitOK {
		r.t.Errorf("$ %s exited %d after Ctrl-C, want 0: %s", line, code, srv.p.describe())
	}
}

// usageRunners run each -h example, by its command line.
var usageRunners = map[string]func(r *docRun, line string){
	"tcpkit serve": func(r *docRun, line string) {
		r.serveExample(line, "tcpkit connect --count 1", "connect to server!\nreceive: test\ndisconnected.")
	},
	"tcpkit serve --port 7000 --keep-open": func(r *docRun, line string) {
		r.serveExample(line, "tcpkit connect 7000 --count 2 --interval 10ms", "connect to server!\nreceive: test\nreceive: test\ndisconnected.")
	},
	"tcpkit serve --mode echo --frame line --host 127.0.0.1": func(r *docRun, line string) {
		r.serveExample(line, "printf 'one\\ntwo\\n' | tcpkit connect 127.0.0.1:5000", "one\ntwo")
	},
	"tcpkit serve --mode exec --max-conns 10 -- cat": func(r *docRun, line string) {
		r.serveExample(line, "echo meow | tcpkit connect 5000", "meow")
	},
	"tcpkit serve --unix /tmp/tcpkit.sock --mode echo": func(r *docRun, line string) {
		r.serveExample(line, "echo over unix | tcpkit connect --unix /tmp/tcpkit.sock -", "over unix")
	},

	"tcpkit serve --port 7000 - > received.bin": func(r *docRun, line string) {
		// Its standard input is a terminal nobody types into: open, so
		// that it sends no FIN before the file has come.
		tty, typed, err := os.Pipe()
		if err != nil {
			r.t.Fatal(err)
		}
		defer typed.Close()
		srv := r.startWith(&docCmd{line: line}, docBlock{file: "(-h example)"}, docNormalizer{}, tty)
		tty.Close()
		srv.waitLines(r.t, 1) // its listening line, on stderr
		r.run("printf 'a file\\n' | tcpkit connect 7000 -")
		if code := srv.p.wait(r.t, waitFor); code != exitOK {
			r.t.Errorf("$ %s exited %d, want 0: %s", line, code, srv.p.describe())
		}
		r.run("test \"$(cat received.bin)\" = 'a file'")
	},
	"tcpkit connect": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open", "listen on port 5000")
		r.untilCtrlC(line, 2) // connect to server!, receive: test
	},
	"tcpkit connect 7000 --count 3": func(r *docRun, line string) {
		r.background("tcpkit serve --port 7000 --keep-open", "listen on port 7000")
		r.run(line)
	},
	"tcpkit connect [::1]:5000 --message ping --interval 100ms --hex": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open", "listen on port 5000")
		r.untilCtrlC(line, 5) // connect to server!, then two replies of two lines
	},
	"echo testing~ | tcpkit connect 5000": func(r *docRun, line string) {
		r.background("tcpkit serve", "listen on port 5000")
		if out, _ := r.run(line); !slices.Equal(out, []string{"test"}) {
			r.t.Errorf("$ %s printed %q, want the server's reply: test", line, out)
		}
	},
	`tcpkit connect 6379 --send 'PING\r\n' --expect '+PONG' --within 2s`: func(r *docRun, line string) {
		r.background("tcpkit serve --port 6379 --reply +PONG", "listen on port 6379") // a Redis, for the example
		r.run(line)
	},
	"tcpkit connect --unix /tmp/tcpkit.sock -": func(r *docRun, line string) {
		r.background("tcpkit serve --unix /tmp/tcpkit.sock --mode echo", "listen on /tmp/tcpkit.sock")
		r.run(line)
	},

	"tcpkit connect -z 5000-5010": func(r *docRun, line string) {
		r.background("tcpkit serve --port 5003", "listen on port 5003")
		if out, _ := r.run(line); !slices.Equal(out, []string{"localhost:5003 open"}) {
			r.t.Errorf("$ %s printed %q, want the open port", line, out)
		}
	},
	"tcpkit bench pingpong -c 50 -d 2s 5000": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open --quiet", "listen on port 5000")
		r.run(line)
	},
	"tcpkit bench oneshot -c 50 -n 2000 --expect test 5001": func(r *docRun, line string) {
		r.background("tcpkit serve --port 5001 --quiet", "listen on port 5001")
		r.run(line)
	},
	"tcpkit bench pingpong -c 4 --rate 200:2000 --ramp 2s -d 3s 5000": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open --quiet", "listen on port 5000")
		r.run(line)
	},
	"tcpkit bench pingpong --rate 2000 -d 2s --report run.html 5000": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open --quiet", "listen on port 5000")
		r.run(line)
		r.run("test -s run.html")
	},
	"tcpkit bench pingpong -c 10 -d 1s --json 5000 > a.json": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open --quiet", "listen on port 5000")
		r.run(line)
		r.run("jq -e '.exchanges > 0' a.json")
	},
	"tcpkit bench merge a.json b.json": func(r *docRun, line string) {
		r.background("tcpkit serve --keep-open --quiet", "listen on port 5000")
		r.run("tcpkit bench pingpong -c 2 -d 300ms --json 5000 > a.json")
		r.run("tcpkit bench pingpong -c 2 -d 300ms --json 5000 > b.json")
		r.run(line)
	},

	"tcpkit ports": func(r *docRun, line string) {
		r.background("tcpkit serve", "listen on port 5000")
		r.run(line)
	},
	"tcpkit ports 5000": func(r *docRun, line string) {
		r.background("tcpkit serve", "listen on port 5000")
		if out, _ := r.run(line); len(out) != 2 || !strings.Contains(out[1], "LISTEN") {
			r.t.Errorf("$ %s printed %q, want the header and the listener", line, out)
		}
	},
	"tcpkit ports --listen": func(r *docRun, line string) {
		r.background("tcpkit serve", "listen on port 5000")
		r.run(line)
	},
	"sudo tcpkit ports 5000": func(r *docRun, line string) {
		needPeer(r.t, "sudo")
		r.background("tcpkit serve", "listen on port 5000")
		// sudo resets PATH to its secure_path, where the tcpkit under test
		// is not: this sudo keeps it.
		keep := `sudo() { command sudo env PATH="$PATH" "$@"; }; `
		if out, _ := r.run(keep + line); len(out) != 2 || !strings.Contains(out[1], "/tcpkit") {
			r.t.Errorf("$ %s printed %q, want the listener and its process", line, out)
		}
	},
	`tcpkit ports --json 5000 | jq '.[] | select(.state == "LISTEN") | .pid'`: func(r *docRun, line string) {
		needPeer(r.t, "jq")
		srv := r.background("tcpkit serve", "listen on port 5000")
		if out, _ := r.run(line); !slices.Equal(out, []string{itoa(srv.cmd.Process.Pid)}) {
			r.t.Errorf("$ %s printed %q, want the server's PID %d", line, out, srv.cmd.Process.Pid)
		}
	},
}

func init() {
	usageRunners["tcpkit cert --out tls"] = func(r *docRun, line string) {
		r.run(line)
		r.run("test -f tls/cert.pem && test -f tls/key.pem")
	}
	usageRunners["tcpkit cert --out tls --host example.test --days 30 --force"] = func(r *docRun, line string) {
		r.run("tcpkit cert --out tls")
		r.run(line) // replaces them
		r.run("openssl x509 -in tls/cert.pem -noout -ext subjectAltName | grep -q example.test")
	}
	usageRunners["source <(tcpkit completion bash)"] = func(r *docRun, line string) {
		r.run(line + " && complete -p tcpkit")
	}
	usageRunners["tcpkit completion zsh > _tcpkit"] = func(r *docRun, line string) {
		needPeer(r.t, "zsh")
		r.run(line + " && zsh -n _tcpkit")
	}
	usageRunners["tcpkit completion fish > ~/.config/fish/completions/tcpkit.fish"] = func(r *docRun, line string) {
		needPeer(r.t, "fish")
		r.env = append(r.env, "HOME="+r.net.dir) // a home of the test's own
		r.run("mkdir -p ~/.config/fish/completions && " + line)
		r.run("fish -c 'complete -C\"tcpkit con\"' | grep -q '^connect'")
	}
}

func init() {
	// watch captures on the namespace's loopback: the seed's run, drawn.
	watchLive := func(r *docRun, line string) {
		needPeer(r.t, "sudo")
		r.background("tcpkit serve", "listen on port 5000")
		keep := `sudo() { command sudo env PATH="$PATH" "$@"; }; `
		w := r.start(&docCmd{line: keep + line}, docBlock{file: "(-h example)"}, docNormalizer{})
		w.p.stderr.waitPrefix(r.t, "watching TCP port 5000 on lo", waitFor)
		r.run("tcpkit connect --count 1")
		w.waitLines(r.t, 12) // the watching line, a header and 10 segments
		syscall.Kill(-w.p.cmd.Process.Pid, syscall.SIGINT)
		if code := w.p.wait(r.t, waitFor); code != exitOK {
			r.t.Errorf("$ %s exited %d after Ctrl-C, want 0: %s", line, code, w.p.describe())
		}
		if out := w.p.stdout.all(); len(out) < 11 || !strings.Contains(strings.Join(out, "\n"), "3-way handshake 1/3") {
			r.t.Errorf("$ %s drew %q, want the seed's ladder", line, out)
		}
	}
	usageRunners["sudo tcpkit watch 5000"] = watchLive
	usageRunners["sudo tcpkit watch --pcap run.pcap 5000"] = func(r *docRun, line string) {
		watchLive(r, line)
		r.run("tcpkit watch --read run.pcap | grep -q '3-way handshake 1/3'")
	}
	usageRunners["tcpkit watch --read run.pcap"] = func(r *docRun, line string) {
		r.run("cp " + repoPath(r.t, "testdata/watch/seed.pcap") + " run.pcap")
		if out, _ := r.run(line); len(out) != 11 {
			r.t.Errorf("$ %s drew %q, want the 10 segments of the seed's run", line, out)
		}
	}
	usageRunners["tcpkit watch --read run.pcap --html run.html"] = func(r *docRun, line string) {
		r.run("cp " + repoPath(r.t, "testdata/watch/seed.pcap") + " run.pcap")
		r.run(line)
		r.run("grep -q '<svg' run.html")
	}
}

// Every example of every command's -h runs, and every runner has its
// example.
func TestUsageExamples(t *testing.T) {
	seen := map[string]bool{}
	for name := range commands {
		for _, line := range usageExamples(t, name) {
			seen[line] = true
			runner, ok := usageRunners[line]
			if !ok {
				t.Errorf("tcpkit %s -h shows %q, which no test runs: add it to usageRunners", name, line)
				continue
			}
			t.Run(line, func(t *testing.T) {
				t.Parallel()
				r := &docRun{t: t, net: newDocNet(t)}
				runner(r, line)
				r.end()
			})
		}
	}
	for line := range usageRunners {
		if !seen[line] {
			t.Errorf("usageRunners has %q, which no -h shows", line)
		}
	}
}

func init() {
	// relay's: each relays to the seed's server on port 5000, and a
	// client through it gets what it would get directly.
	seed := "connect to server!\nreceive: test\ndisconnected."
	relayExample := func(server, client, want string) func(r *docRun, line string) {
		return func(r *docRun, line string) {
			if strings.HasPrefix(client, "curl") {
				needPeer(r.t, "curl")
			}
			r.background(server, "listen on port 5000")
			relay := r.start(&docCmd{line: line}, docBlock{file: "(-h example)"}, docNormalizer{})
			relay.waitLines(r.t, 1) // its listen line
			out, _ := r.run(client)
			if got := strings.Join(out, "\n"); got != want {
				r.t.Errorf("$ %s\nthrough $ %s: printed %q, want %q", client, line, got, want)
			}
			syscall.Kill(-relay.p.cmd.Process.Pid, syscall.SIGINT)
			if code := relay.p.wait(r.t, waitFor); code != exitOK {
				r.t.Errorf("$ %s exited %d after Ctrl-C, want 0: %s", line, code, relay.p.describe())
			}
		}
	}
	usageRunners["tcpkit relay 6000 localhost:5000"] = relayExample("tcpkit serve", "tcpkit connect 6000 --count 1", seed)
	usageRunners["tcpkit relay --hex 127.0.0.1:6000 5000"] = relayExample("tcpkit serve", "tcpkit connect 127.0.0.1:6000 --count 1", seed)
	usageRunners["tcpkit relay --latency 50ms 6000 5000"] = relayExample("tcpkit serve", "tcpkit connect 6000 --count 1", seed)
	usageRunners["tcpkit relay --bandwidth down:1048576 6000 5000"] = relayExample("tcpkit serve", "tcpkit connect 6000 --count 1", seed)
	usageRunners["tcpkit relay --control 127.0.0.1:6001 6000 5000"] = relayExample("tcpkit serve", "curl -s 127.0.0.1:6001/toxics", "[]")
	usageRunners["tcpkit relay --unix /tmp/relay.sock 5000"] = relayExample("tcpkit serve", "tcpkit connect --unix /tmp/relay.sock --count 1", seed)
}

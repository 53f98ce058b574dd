// Command compare measures tcpkit serve against the seed's Node server, a
// naive goroutine-per-connection Go server, a gnet v2 server and a minimal
// C epoll server, each pinned to one core with the load generator on the
// other, and ranks them by exchanges per second of busy server core.
//
//	cd bench && go run ./compare [flags]
//
// It builds every program, then for each round, scenario and server (the
// servers in a rotating order) starts the server with taskset, waits until
// it accepts, runs the generator, reads the server core's busy time from
// /proc/stat over the generator's measured window, and stops the server.
// It prints medians as markdown tables and writes results/latest.md. See
// bench/README.md.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }() // a second Ctrl-C kills at once
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopAll()
	os.Exit(code)
}

const usage = `Usage: go run ./compare [flags]   (in tcpkit/bench)

Examples:
  go run ./compare                                   # the full comparison, under 10 minutes
  go run ./compare -d 1s -rounds 1 --generator c     # a quick check of the plumbing
  go run ./compare -servers c,tcpkit-quiet -scenarios pingpong50

Flags:
`

// Time a run takes beyond warmup and -d, for the budget: start the server,
// wait for it, let the generator connect and drain, stop the server.
const (
	loadOverhead = 1200 * time.Millisecond
	idleOverhead = 4 * time.Second // also opening the connections
	timeLimit    = 10 * time.Minute
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	d := fs.Duration("d", 3*time.Second, "measured `duration` of each run")
	warmup := fs.Duration("warmup", time.Second, "load before each measured window, not counted")
	rounds := fs.Int("rounds", 3, "rounds; each runs every server in every scenario, in a rotated order")
	gen := fs.String("generator", "tcpkit", "load generator: tcpkit (tcpkit bench) or c (servers/c/gen.c)")
	only := fs.String("servers", "all", "comma-separated servers: c, tcpkit-quiet, tcpkit, tcpkit-std, naive, gnet, node, tcpkit-proxy, tcpkit-tls, tcpkit-std-tls, tcpkit-unix; relays: relay, relay-copy, haproxy, socat")
	scen := fs.String("scenarios", "all", "comma-separated scenarios: oneshot, pingpong50, pingpong1000, idle, pingpong500, relay-stream, relay-oneshot")
	idleConns := fs.Int("idle-conns", 10000, "connections held in the idle scenario")
	idleHold := fs.Duration("idle-hold", 2*time.Second, "how long the idle scenario holds its connections once open (the server's RSS is sampled meanwhile)")
	out := fs.String("out", "results/latest.md", "markdown report `file`, relative to bench/; empty for none")
	serverCPU := fs.Int("server-cpu", 1, "CPU the servers are pinned to")
	genCPU := fs.Int("gen-cpu", 0, "CPU the generator (and compare itself) is pinned to")
	benchFlags := fs.String("bench-flags", "", "more flags for tcpkit bench, space-separated")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "compare: "+format+"\n", a...)
		return 1
	}
	if fs.NArg() > 0 || *rounds < 1 || *d <= 0 || *warmup < 0 || (*gen != "tcpkit" && *gen != "c") ||
		*serverCPU == *genCPU || *idleConns < 1 || *idleHold <= 0 {
		fs.Usage()
		return 2
	}
	if runtime.NumCPU() < 2 && !cpuExists(*serverCPU) {
		return fail("needs two CPUs: servers on one, the generator on the other")
	}
	for _, cpu := range []int{*serverCPU, *genCPU} {
		if !cpuExists(cpu) {
			return fail("no cpu%d in /proc/stat", cpu)
		}
	}
	if err := pinSelf(*genCPU); err != nil {
		return fail("%v", err)
	}
	if _, err := raiseNoFile(); err != nil {
		return fail("raise RLIMIT_NOFILE: %v", err)
	}

	srvs, err := pick(servers(), *only, func(s server) string { return s.key })
	if err != nil {
		return fail("-servers: %v", err)
	}
	scs, err := pick(scenarios(*idleConns), *scen, func(s scenario) string { return s.key })
	if err != nil {
		return fail("-scenarios: %v", err)
	}
	tables := plan(scs, srvs, *gen)
	budget, nruns := estimate(tables, *rounds, *warmup, *d, *idleHold)
	fmt.Fprintf(stderr, "compare: %d runs (%d rounds); budget ≈ %v: load runs %v warmup + %v + ~%v, idle runs %v + ~%v\n",
		nruns, *rounds, budget.Round(time.Second), *warmup, *d, loadOverhead, *idleHold, idleOverhead)
	if budget > timeLimit {
		fmt.Fprintf(stderr, "compare: warning: over the %v the whole run should take; use a shorter -d or fewer -rounds\n", timeLimit)
	}

	benchDir, err := findBenchDir()
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stderr, "compare: building tcpkit, naive, gnet, the C server and the C generator")
	bins, err := build(ctx, benchDir)
	if err != nil {
		return fail("build: %v", err)
	}
	defer os.RemoveAll(bins.dir)
	if *gen == "tcpkit" && !bins.hasBench() {
		return fail("this tcpkit has no bench command yet; use --generator c")
	}

	st := settings{d: *d, warmup: *warmup, idleHold: *idleHold, serverCPU: *serverCPU, genCPU: *genCPU,
		samplePeriod: 20 * time.Millisecond, generatorBenchArgs: strings.Fields(*benchFlags)}
	started := time.Now()
	n := 0
	for round := range *rounds {
		for _, t := range tables {
			if len(t.rows) == 0 {
				continue
			}
			for i := range t.rows {
				// Interleave: round r starts r places further on.
				r := t.rows[(i+round)%len(t.rows)]
				if ctx.Err() != nil {
					fmt.Fprintln(stderr, "compare: interrupted; stopping every process")
					return 130
				}
				n++
				res := runOne(bins, st, t.sc, r.e, ctx.Done())
				if ctx.Err() != nil {
					fmt.Fprintln(stderr, "compare: interrupted; stopping every process")
					return 130
				}
				r.runs = append(r.runs, res)
				fmt.Fprintf(stderr, "[%d/%d %s] round %d, %s, %s\n", n, nruns,
					time.Since(started).Round(time.Second), round+1, t.sc.title, progress(r.e, res, *gen))
			}
		}
		if round == 0 && *rounds > 1 {
			took := time.Since(started)
			all := took * time.Duration(*rounds)
			fmt.Fprintf(stderr, "compare: round 1 took %v; all %d rounds will take about %v\n",
				took.Round(time.Second), *rounds, all.Round(time.Second))
			if all > timeLimit {
				fmt.Fprintf(stderr, "compare: warning: over the %v budget (a busy machine, or a slow generator in idle?)\n", timeLimit)
			}
		}
	}

	var rep bytes.Buffer
	writeReport(&rep, tables, *gen, st, *rounds, args, time.Since(started))
	stdout.Write(rep.Bytes())
	if *out != "" {
		path := *out
		if !filepath.IsAbs(path) {
			path = filepath.Join(benchDir, path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fail("%v", err)
		}
		if err := os.WriteFile(path, rep.Bytes(), 0o644); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "compare: wrote %s\n", path)
	}
	return 0
}

// plan lays out a table per scenario. In pingpong c=50 the C server is
// also loaded by the C generator, the ceiling tcpkit bench is held to.
func plan(scs []scenario, srvs []server, gen string) []*table {
	var tables []*table
	for _, sc := range scs {
		t := &table{sc: sc}
		for _, s := range srvs {
			if (s.relay != nil) != sc.relay || !sc.runs(s) {
				continue // servers in the server scenarios, relays in the relay ones
			}
			if sc.relay {
				t.rows = append(t.rows, &row{e: entry{srv: s, gen: "tcpkit"}}) // the C generator has no stream mode
				continue
			}
			t.rows = append(t.rows, &row{e: entry{srv: s, gen: gen}})
			if s.key == "c" && sc.key == "pingpong50" && gen != "c" {
				t.rows = append(t.rows, &row{e: entry{srv: s, gen: "c"}})
			}
		}
		if len(t.rows) > 0 {
			tables = append(tables, t)
		}
	}
	return tables
}

func estimate(tables []*table, rounds int, warmup, d, idleHold time.Duration) (time.Duration, int) {
	var per time.Duration
	n := 0
	for _, t := range tables {
		for _, r := range t.rows {
			if t.sc.mode == "idle" {
				per += idleHold + r.e.srv.idleExtra + idleOverhead
			} else {
				per += warmup + d + loadOverhead
			}
		}
		n += len(t.rows)
	}
	return time.Duration(rounds) * per, rounds * n
}

// pick selects items by key from a comma-separated list, or all of them.
func pick[T any](all []T, list string, key func(T) string) ([]T, error) {
	if list == "all" || list == "" {
		return all, nil
	}
	var out []T
	for _, k := range strings.Split(list, ",") {
		i := slices.IndexFunc(all, func(x T) bool { return key(x) == strings.TrimSpace(k) })
		if i < 0 {
			var keys []string
			for _, x := range all {
				keys = append(keys, key(x))
			}
			return nil, fmt.Errorf("unknown %q; choose from %s", k, strings.Join(keys, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func cpuExists(cpu int) bool {
	_, err := cpuIdle(cpu)
	return err == nil
}

func progress(e entry, r result, gen string) string {
	s := e.label(gen) + ": "
	switch {
	case r.err != nil:
		return s + "FAILED: " + oneLine(r.err.Error())
	case r.gen.Mode == "idle" || (r.gen.Held != nil && r.busyS == 0):
		return s + fmt.Sprintf("held %s, %s KiB/conn", num(held(r)), dec(kibPerConn(r), 2))
	default:
		s += fmt.Sprintf("%s ex/s raw, core %s busy (process %s), %s ex/s per busy core, %s errors",
			num(r.gen.RatePerS), pct(r.busyFrac), pct(r.ownFrac), num(r.perBusy), num(r.errorCount()))
		if r.noisy() {
			s += " (noisy: something else ran on the server core)"
		}
		return s
	}
}

// writeReport writes the whole markdown report.
func writeReport(w io.Writer, tables []*table, gen string, st settings, rounds int, args []string, took time.Duration) {
	cmd := "go run ./compare"
	if !strings.Contains(os.Args[0], "go-build") {
		cmd = filepath.Base(os.Args[0])
	}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		cmd += " " + a
	}
	genName := "tcpkit bench"
	if gen == "c" {
		genName = "the C generator (servers/c/gen.c)"
	}
	fmt.Fprintln(w, "# tcpkit performance comparison")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- Date: %s (took %v)\n", time.Now().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	fmt.Fprintf(w, "- Machine: %d CPUs, %s\n", runtime.NumCPU(), cpuModel())
	for _, v := range versions() {
		fmt.Fprintf(w, "- %s\n", v)
	}
	fmt.Fprintf(w, "- Command: `cd bench && %s`\n", cmd)
	fmt.Fprintf(w, "- Generator: %s on CPU %d; each server alone on CPU %d (GOMAXPROCS=1 for Go). "+
		"Each run: %v warmup, %v measured (idle: connections held %v once open); %d rounds, servers interleaved; medians.\n\n",
		genName, st.genCPU, st.serverCPU, st.warmup, st.d, st.idleHold, rounds)
	fmt.Fprintln(w, "**Per busy core** is exchanges per second of the server core's busy time "+
		"over the generator's measured window (the window less the core's idle and iowait time in "+
		"/proc/stat, so user, system, irq, softirq and steal): "+
		"on loopback much of the receiving work runs on the sender's core, so raw rates are capped "+
		"by the generator's core, while work per busy core ranks the servers. × C and × Node divide "+
		"by the C epoll and Node servers' figures. *Server process CPU* is the server's own "+
		"utime+stime over the same window: far below the core's busy time means softirq work or "+
		"another process on that core (a noisy machine). *RSTs sent* counts the whole network "+
		"namespace's resets during the run. Idle: growth of the server's VmRSS from start to peak "+
		"while the connections are held, per connection (user-space memory only; the kernel's "+
		"socket buffers are the same for every server and not counted).")
	fmt.Fprintln(w)
	byKey := map[string]*table{}
	for _, t := range tables {
		if len(t.rows) == 0 {
			continue
		}
		if t.sc.relay {
			writeRelayTable(w, t)
		} else {
			writeTable(w, t, gen)
		}
		byKey[t.sc.key] = t
	}
	writeTargets(w, append(targets(byKey, gen), relayTargets(byKey)...))
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// scanParallel bounds the connections a port check has open at once.
const scanParallel = 64

// scanTarget is what connect -z checks: a host and a range of ports.
type scanTarget struct {
	host   string
	lo, hi int
}

// parseScanTarget reads PORT, LO-HI, HOST:PORT or HOST:LO-HI.
func parseScanTarget(s string) (scanTarget, error) {
	host, ports := "localhost", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, ports = strings.Trim(s[:i], "[]"), s[i+1:]
	}
	loS, hiS, isRange := strings.Cut(ports, "-")
	lo, err1 := strconv.Atoi(loS)
	hi, err2 := lo, error(nil)
	if isRange {
		hi, err2 = strconv.Atoi(hiS)
	}
	switch {
	case err1 != nil || err2 != nil || host == "":
		return scanTarget{}, fmt.Errorf("%q is not a PORT, a range LO-HI, or HOST: before either", s)
	case lo < 1 || hi > 65535 || lo > hi:
		return scanTarget{}, fmt.Errorf("ports %d-%d: use 1 to 65535, the lower first", lo, hi)
	}
	return scanTarget{host, lo, hi}, nil
}

// scanCmd is connect -z, as nc -z: for each port of the range, open a
// connection and close it at once, sending nothing; print the open ones,
// in order, as HOST:PORT open; exit 0 if one is. For a single port that
// is not open, say why.
func scanCmd(ctx context.Context, fs *flagSet, pos []string, timeout time.Duration, v4, v6 bool, stdout, stderr io.Writer) int {
	var conflict string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "z", "connect-timeout", "4", "6":
		default:
			conflict = f.Name
		}
	})
	switch {
	case conflict != "":
		return usageError(stderr, "connect", "-z does not go with --%s: it only checks whether ports accept a connection, and sends nothing", conflict)
	case len(pos) != 1:
		return usageError(stderr, "connect", "-z needs one target: PORT, LO-HI, HOST:PORT or HOST:LO-HI")
	}
	network, err := family(v4, v6)
	if err != nil {
		return usageError(stderr, "connect", "%v", err)
	}
	tg, err := parseScanTarget(pos[0])
	if err != nil {
		return usageError(stderr, "connect", "%v", err)
	}
	n := tg.hi - tg.lo + 1
	open := make([]bool, n)
	errs := make([]error, n)
	d := net.Dialer{Timeout: timeout}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, scanParallel) {
		wg.Go(func() {
			for i := range next {
				c, err := d.DialContext(ctx, network, net.JoinHostPort(tg.host, strconv.Itoa(tg.lo+i)))
				if err == nil {
					c.Close()
				}
				open[i], errs[i] = err == nil, err
			}
		})
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return exitOK // Ctrl-C
	}
	any := false
	for i, ok := range open {
		if ok {
			any = true
			fmt.Fprintf(stdout, "%s open\n", net.JoinHostPort(tg.host, strconv.Itoa(tg.lo+i)))
		}
	}
	switch {
	case any:
		return exitOK
	case n == 1:
		fmt.Fprintf(stderr, "tcpkit connect: %s\n", explainDial(net.JoinHostPort(tg.host, strconv.Itoa(tg.lo)), errs[0]))
	default:
		why := ""
		var ne net.Error
		if errors.As(errs[0], &ne) && ne.Timeout() {
			why = " (they did not answer within --connect-timeout)"
		}
		fmt.Fprintf(stderr, "tcpkit connect: no port of %s:%d-%d accepts connections%s\n", tg.host, tg.lo, tg.hi, why)
	}
	return exitFail
}

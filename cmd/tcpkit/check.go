package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"time"

	"tcpkit"
)

// maxCheckBytes bounds what a check keeps of the reply to match against.
const maxCheckBytes = 64 << 10

// shownCheckBytes bounds what a check's verdict shows of the reply.
const shownCheckBytes = 256

// A check is connect's probe mode: send bytes, and succeed once the reply
// contains the expected bytes or matches a regexp, within a deadline.
type check struct {
	send   []byte
	want   []byte         // expected bytes, or
	re     *regexp.Regexp // an expected pattern
	within time.Duration

	mu      sync.Mutex
	got     []byte        // the first maxCheckBytes received
	total   int64         // all the bytes received
	matched chan struct{} // closed on the first match
}

func (k *check) match() bool {
	if k.re != nil {
		return k.re.Match(k.got)
	}
	return bytes.Contains(k.got, k.want)
}

func (k *check) wantString() string {
	if k.re != nil {
		return "/" + k.re.String() + "/"
	}
	return strconv.Quote(string(k.want))
}

func (k *check) run(ctx context.Context, d *dialer, network, addr string, stdout, stderr io.Writer) int {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, k.within)
	defer cancel()
	k.matched = make(chan struct{})
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tcpkit connect: check failed: %s\n", fmt.Sprintf(format, a...))
		return exitFail
	}

	c, err := d.dial(ctx, network, addr, tcpkit.Events{OnData: func(c *tcpkit.Conn, p []byte) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.total += int64(len(p))
		if len(k.got) < maxCheckBytes {
			k.got = append(k.got, p[:min(len(p), maxCheckBytes-len(k.got))]...)
		}
		select {
		case <-k.matched:
		default:
			if k.match() {
				close(k.matched)
			}
		}
	}})
	if err != nil {
		if ctx.Err() != nil {
			return fail("could not connect to %s within %v", addr, k.within)
		}
		return fail("%s", explainDial(addr, err))
	}
	defer func() { c.Close(); <-c.Done() }()
	if len(k.send) > 0 {
		c.Write(k.send)
	}

	select {
	case <-k.matched:
	case <-c.Done():
	case <-ctx.Done():
	}
	k.mu.Lock()
	got, total := k.got, k.total
	k.mu.Unlock()
	shown := receivedText(got, total)
	select {
	case <-k.matched:
		fmt.Fprintf(stdout, "ok: %s matched %s after %v\n", shown, k.wantString(), time.Since(start).Round(time.Microsecond))
		return exitOK
	default:
	}
	switch {
	case c.Err() != nil:
		return fail("%s; received %s, want %s", explainBroken(c.Err(), "server"), shown, k.wantString())
	case isDone(c.Done()):
		return fail("the server ended the connection first; received %s, want %s", shown, k.wantString())
	case total == 0:
		return fail("nothing received within %v, want %s", k.within, k.wantString())
	}
	return fail("wrong reply within %v: received %s, want %s", k.within, shown, k.wantString())
}

// receivedText shows what a check received, quoted and escaped: all of
// it up to shownCheckBytes, else the first shownCheckBytes and the count.
func receivedText(got []byte, total int64) string {
	if total <= shownCheckBytes {
		return strconv.Quote(string(got))
	}
	return fmt.Sprintf("%d bytes, the first %d: %s (%d more not shown)", total, shownCheckBytes, strconv.Quote(string(got[:shownCheckBytes])), total-shownCheckBytes)
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

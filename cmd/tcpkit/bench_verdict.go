package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"tcpkit/internal/bench"
)

// benchVerdict returns why a run failed, as the one line bench prints on
// stderr before it exits 1, or "" when the run passed. A run fails when
// no exchange succeeded (idle: no connection was held), when more
// exchanges failed than --max-errors allows, or when -n alone stopped at
// the safety bound before its count. A run interrupted by a signal is
// judged on what it did until then.
func benchVerdict(res *bench.Result, cfg *bench.Config, maxErr *maxErrors, untilCount bool) string {
	noun := "exchange"
	if res.Mode == string(bench.Idle) {
		noun = "connection"
	}
	failed := res.ErrorCount()
	ok := res.Exchanges
	switch {
	case ok == 0 && failed == 0 && res.EndedBy == bench.EndedBySignal:
		return "" // interrupted before anything was measured
	case ok == 0 && failed == 0:
		return fmt.Sprintf("no %s succeeded against %s, and none failed: the run ended before any was done", noun, res.Target)
	case ok == 0 && res.Mode == string(bench.Idle):
		return fmt.Sprintf("no connection was held to %s: %s", res.Target, explainErrors(res, cfg))
	case ok == 0:
		return fmt.Sprintf("no exchange succeeded against %s: %s", res.Target, explainErrors(res, cfg))
	case failed > maxErr.allowed(ok+failed):
		return fmt.Sprintf("%d of %d %ss failed, more than --max-errors %s allows: %s", failed, ok+failed, noun, maxErr, explainErrors(res, cfg))
	case untilCount && res.EndedBy == bench.EndedByDuration:
		return fmt.Sprintf("stopped at the safety bound of %v after %d of %d exchanges: give -d to allow a longer run", cfg.Duration, ok+failed, cfg.Exchanges)
	}
	return ""
}

// explainErrors says what failed, most frequent kind first.
func explainErrors(res *bench.Result, cfg *bench.Config) string {
	var kinds []string
	for k, n := range res.Errors {
		if n > 0 {
			kinds = append(kinds, k)
		}
	}
	slices.SortFunc(kinds, func(a, b string) int {
		return cmp.Or(cmp.Compare(res.Errors[b], res.Errors[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = explainKind(k, res.Errors[k], res.FirstError(k), res.Target, cfg)
	}
	return strings.Join(parts, "; ")
}

// explainKind says in plain words what n errors of kind were, from the
// first of them.
func explainKind(kind string, n int64, first error, target string, cfg *bench.Config) string {
	var op string
	var oe *bench.OpError
	if errors.As(first, &oe) {
		op = oe.Op
	}
	switch kind {
	case "refused":
		return fmt.Sprintf("%d refused: nothing is listening at %s, or its backlog is full (ECONNREFUSED)", n, target)
	case "reset":
		if errno, _ := errnoOf(first); errno == syscall.EPIPE {
			return fmt.Sprintf("%d reset by the server (EPIPE: a send after the server had reset the connection)", n)
		}
		return fmt.Sprintf("%d reset by the server (ECONNRESET)", n)
	case "timeout":
		switch op {
		case "connect":
			return fmt.Sprintf("%d timed out connecting (--connect-timeout %v)", n, cfg.ConnectTimeout)
		case "send":
			return fmt.Sprintf("%d timed out sending: the server is not reading (--reply-timeout %v)", n, cfg.ReplyTimeout)
		case "end":
			return fmt.Sprintf("%d timed out: still in flight when the run ended and --drain-timeout %v had passed", n, cfg.DrainTimeout)
		case "echo":
			return fmt.Sprintf("%d timed out waiting for the echo of what was sent", n)
		}
		return fmt.Sprintf("%d timed out waiting for a reply (--reply-timeout %v)", n, cfg.ReplyTimeout)
	case "wrong_reply":
		var wr *bench.WrongReply
		if errors.As(first, &wr) && wr.Got != nil {
			return fmt.Sprintf("%d wrong replies: the first %s (it began %q)", n, wr.Why, wr.Got)
		} else if wr != nil {
			return fmt.Sprintf("%d wrong replies: the first %s", n, wr.Why)
		}
		return fmt.Sprintf("%d wrong replies", n)
	case "closed":
		switch op {
		case "hold":
			return fmt.Sprintf("%d closed by the server while held", n)
		case "echo":
			return fmt.Sprintf("%d closed by the server before the echo was complete", n)
		}
		return fmt.Sprintf("%d closed by the server before the reply was complete", n)
	case "emfile":
		return fmt.Sprintf("%d failed for lack of file descriptors (EMFILE: the limit is %d, ulimit -n)", n, bench.OpenFileLimit())
	}
	if first == nil {
		return fmt.Sprintf("%d failed", n)
	}
	return fmt.Sprintf("%d failed: %s", n, explainBroken(first, "server"))
}

package bench

import (
	"bytes"
	"fmt"
)

// maxScan is how much of a pingpong reply is read looking for
// Config.Expect before it counts as wrong: a server that streams without
// ever sending it must not hold an exchange until its timeout.
const maxScan = 1 << 20

// A WrongReply is the error of a reply that is not what Config's Expect,
// ExpectLen or ExpectExact say.
type WrongReply struct {
	Why string // "does not contain", "is not", "is longer than", ...
	Got []byte // the start of what came, at most 64 bytes
}

func (e *WrongReply) Error() string { return fmt.Sprintf("wrong reply: %s: %q", e.Why, e.Got) }

func wrongReply(why string, got []byte) *WrongReply {
	return &WrongReply{Why: why, Got: bytes.Clone(got[:min(len(got), 64)])}
}

// A matcher looks for a text in bytes that arrive in pieces, keeping only
// the last len(want)-1 bytes between pieces, in a buffer of its own.
type matcher struct {
	want  []byte
	buf   []byte // cap 2·len(want): the carried tail, then the next piece's head
	carry int    // bytes of buf carried from earlier pieces
	found bool
}

func newMatcher(want []byte) matcher {
	return matcher{want: want, buf: make([]byte, 0, 2*len(want))}
}

func (m *matcher) reset() { m.carry, m.found = 0, false }

// feed takes the next piece and reports whether want has appeared.
func (m *matcher) feed(p []byte) bool {
	if m.found || len(m.want) == 0 {
		m.found = true
		return true
	}
	keep := len(m.want) - 1
	if m.carry > 0 && bytes.Contains(append(m.buf[:m.carry], p[:min(len(p), keep)]...), m.want) {
		m.found = true
		return true
	}
	if bytes.Contains(p, m.want) {
		m.found = true
		return true
	}
	if len(p) >= keep {
		m.carry = copy(m.buf[:keep], p[len(p)-keep:])
		return false
	}
	joined := append(m.buf[:m.carry], p...) // fits: carry+len(p) < 2·keep
	n := min(len(joined), keep)
	m.carry = copy(m.buf[:n], joined[len(joined)-n:])
	return false
}

// A reply follows one pingpong reply as it arrives: where it ends, and
// whether it is right.
type reply struct {
	cfg *Config
	got int
	m   matcher
}

func newReply(cfg *Config) reply { return reply{cfg: cfg, m: newMatcher(cfg.Expect)} }

func (r *reply) reset() { r.got = 0; r.m.reset() }

// fixedLength is the reply's length when Config fixes it, else 0.
func (r *reply) fixedLength() int {
	if r.cfg.ExpectExact != nil {
		return len(r.cfg.ExpectExact)
	}
	return r.cfg.ExpectLen
}

// feed takes the next bytes of the reply and reports whether it is
// complete, or a *WrongReply once it cannot be right.
func (r *reply) feed(p []byte) (done bool, err error) {
	c := r.cfg
	if exact := c.ExpectExact; exact != nil {
		if r.got+len(p) > len(exact) || !bytes.Equal(p, exact[r.got:r.got+len(p)]) {
			return false, wrongReply("is not the --expect-exact reply", p)
		}
		r.got += len(p)
		return r.got == len(exact), nil
	}
	r.got += len(p)
	found := c.Expect == nil || r.m.feed(p)
	if n := c.ExpectLen; n > 0 {
		switch {
		case r.got > n:
			return false, wrongReply(fmt.Sprintf("is longer than --expect-len %d", n), p)
		case r.got < n:
			return false, nil
		case !found:
			return false, wrongReply("does not contain --expect", p)
		}
		return true, nil
	}
	if !found && r.got > maxScan {
		return false, wrongReply("does not contain --expect in its first MiB", p)
	}
	return found, nil
}

// lateWrong returns, for a reply that timed out, a *WrongReply if bytes
// came but never contained Expect (wrong rather than late), else nil.
func (r *reply) lateWrong() error {
	if r.got > 0 && r.cfg.Expect != nil && r.cfg.ExpectLen == 0 {
		return wrongReply("does not contain --expect", nil)
	}
	return nil
}

// A wholeReply checks a oneshot reply, read to the server's FIN.
type wholeReply struct {
	cfg   *Config
	total int
	head  []byte // the first bytes, for messages and ExpectExact
	m     matcher
}

func newWholeReply(cfg *Config) wholeReply {
	return wholeReply{cfg: cfg, head: make([]byte, 0, max(64, len(cfg.ExpectExact)+1)), m: newMatcher(cfg.Expect)}
}

func (w *wholeReply) reset() { w.total, w.head = 0, w.head[:0]; w.m.reset() }

func (w *wholeReply) feed(p []byte) {
	w.total += len(p)
	if room := cap(w.head) - len(w.head); room > 0 {
		w.head = append(w.head, p[:min(len(p), room)]...)
	}
	if w.cfg.Expect != nil {
		w.m.feed(p)
	}
}

// check returns a *WrongReply if the whole reply is not right.
func (w *wholeReply) check() error {
	c := w.cfg
	switch {
	case c.ExpectExact != nil && (w.total != len(c.ExpectExact) || !bytes.Equal(w.head, c.ExpectExact)):
		return wrongReply("is not the --expect-exact reply", w.head)
	case c.ExpectLen > 0 && w.total != c.ExpectLen:
		return wrongReply(fmt.Sprintf("is %d bytes, not --expect-len %d", w.total, c.ExpectLen), w.head)
	case c.Expect != nil && !w.m.found:
		return wrongReply("does not contain --expect", w.head)
	}
	return nil
}

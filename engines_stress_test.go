//go:build linux

package tcpkit

// A differential test of the two engines. A seed makes a short script of
// what a client does on one connection: messages sent in partial writes
// (lines split anywhere, lines of about MaxMessage and over it), requests
// for replies up to a mebibyte that go over the high-water mark (written
// from the callback or from Conn.Offload), waits for the idle timeout,
// the server's End and Close, and the client's half-close (maybe right
// behind a request whose reply is still queued), close and reset. The
// script runs against a server on the std engine and one on the epoll
// engine, and what the client received and the events the server reported
// must be the same on both, and what the script's model says.
//
// Everything compared is deterministic by construction, not by timing:
//
//   - Lines framing, so messages do not depend on how reads chunk.
//   - The client waits for each step's whole reply before the next step,
//     so what the server reads and writes never races with a FIN or a
//     reset. Where a step pipelines (a big reply, then more lines, or the
//     FIN), the order is the stream's. A reset never follows bytes the
//     server may not have read, and a close (whose reset comes back to
//     the next write) never follows a line the server still answers.
//   - The idle timeout is off until the client asks for it ("idle"), and
//     OnTimeout turns it off again after writing "timeout\n": the client
//     waits for that line, so exactly one timeout happens, with no sleep.
//     (With an idle timeout always on, any pause of the client longer
//     than the timeout, which -race on a busy machine makes likely, would
//     add a timeout of its own.)
//   - Nothing follows "off" in its step: with framing, both engines
//     deliver the complete messages already read even while Offload has
//     the connection paused, so a line behind it would be answered in
//     the middle of the offloaded reply.
//   - After a line over MaxMessage, the server closes with input unread,
//     so the client sees EOF or a reset; both count as the same.
//
// OnDrain is the exception: whether a Write is queued at all depends on
// how much the kernel took at once, and on the std engine the flush
// goroutine may empty the queue, fire OnDrain and start a new queue while
// the callback is still writing, so the number of drains and where they
// fall among the other events vary from run to run. Drains are left out
// of the comparison and checked per engine instead (see drainProblem): a
// drain only after a step whose reply reached the high-water mark, at
// least one if a Write saw NeedDrain report true (the client reads the
// whole reply before it can reset, so the close cannot pre-empt the
// drain), and on the epoll engine no more than the callbacks that saw it.
// Half the scripts dial with small socket buffers so that replies do
// queue (see smallBuffers).
//
// Each script runs over every transport (see stressTransports): plain
// TCP; TCP with a PROXY protocol header, which the server reads as its
// Preamble; TLS, through a Handshake; a Unix socket; and a connection
// the server side dialed itself (a Dialer with the same events, the
// script's client being the accepted end). The model is the same for
// all; where a transport cannot show what the model follows, the
// generator leaves it out (see genOpts).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	stressHWM    = 4 << 10               // the servers' high-water mark: small, so drains happen
	stressIdle   = 20 * time.Millisecond // the idle timeout "idle" turns on
	stressMaxBig = 1 << 20               // the largest reply "big" asks for
	stressMaxMsg = 16 << 10              // the servers' MaxMessage
)

// stressPattern is what "big" replies with: printable, and without a
// short period, so a reordered or repeated chunk shows.
var stressPattern = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	p := make([]byte, stressMaxBig)
	for i := range p {
		p[i] = 'a' + byte(r.IntN(26))
	}
	return p
})

// The server.

// A connLog is what the server saw of one connection.
type connLog struct {
	mu         sync.Mutex
	events     []string // "connect", "data <line>", "write-err <kind>", "end", "timeout", "drain", "error <kind>", "close <hadError>"
	errs       []string // the errors' texts, for failure messages only
	backlogged int      // callbacks (and offloaded functions) in which a Write left NeedDrain true
	offloads   int      // "off" requests
	closed     chan struct{}

	// Used by callbacks only, which never overlap.
	ended     bool // the server called End ("end")
	peerEnded bool // OnEnd ran
}

func (l *connLog) add(ev string) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *connLog) backlog(over bool) {
	if over {
		l.mu.Lock()
		l.backlogged++
		l.mu.Unlock()
	}
}

func (l *connLog) addErr(prefix string, err error) {
	l.mu.Lock()
	l.events = append(l.events, prefix+" "+errKind(err))
	l.errs = append(l.errs, err.Error())
	l.mu.Unlock()
}

// A stressServer serves the scripts' protocol, on one engine and one
// transport, and keeps a connLog per connection, by the client's address.
type stressServer struct {
	engine   Engine
	tr       stressTransport
	halfOpen bool
	srv      *Server
	addr     string

	dialer *Dialer // the dialed transport's: it connects to each script's own listener

	mu   sync.Mutex
	logs map[string]*connLog
}

// log returns the log of the connection from the client at remote,
// making it on first use: by OnConnect or by the client, whichever looks
// first.
func (s *stressServer) log(remote string) *connLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[remote]
	if l == nil {
		l = &connLog{closed: make(chan struct{})}
		s.logs[remote] = l
	}
	return l
}

// startStressServer serves the protocol the scripts speak:
//
//	"big N K\n"  N bytes of stressPattern, in Writes of K bytes
//	"off N K\n"  the same, written from Conn.Offload
//	"idle\n"     turn the idle timeout on; OnTimeout writes "timeout\n"
//	             and turns it off
//	"end\n"      write "ending\n" and End
//	"close\n"    write "closing\n" and Close
//	other lines  "got <line>"
//
// OnEnd writes "eof\n". With halfOpen (AllowHalfOpen), it also turns the
// idle timeout on, and the OnTimeout that follows ends the connection.
func startStressServer(t testing.TB, engine Engine, tr stressTransport, halfOpen bool, loops int) *stressServer {
	t.Helper()
	s := &stressServer{engine: engine, tr: tr, halfOpen: halfOpen, logs: make(map[string]*connLog)}
	logOf := func(c *Conn) *connLog { return c.Value().(*connLog) }
	// write writes p, and reports whether the output is over the
	// high-water mark after it.
	write := func(c *Conn, p []byte) bool {
		if _, err := c.Write(p); err != nil {
			logOf(c).addErr("write-err", err)
		}
		return c.NeedDrain()
	}
	writeBig := func(c *Conn, n, k int) (over bool) {
		pat := stressPattern()
		for off := 0; off < n; off += k {
			over = write(c, pat[off:min(off+k, n)]) || over
		}
		return over
	}
	s.srv = &Server{
		Engine: engine,
		Loops:  loops,
		ConnOptions: ConnOptions{
			Framing:       Lines,
			MaxMessage:    stressMaxMsg,
			HighWaterMark: stressHWM,
			IdleTimeout:   stressIdle, // armed at accept; OnConnect turns it off until "idle"
			AllowHalfOpen: halfOpen,
		},
		Events: Events{
			OnConnect: func(c *Conn) {
				l := s.log(s.key(c))
				c.SetValue(l)
				l.add("connect")
				c.SetTimeout(0)
			},
			OnData: func(c *Conn, p []byte) {
				l := logOf(c)
				l.add("data " + string(p))
				line := strings.TrimSuffix(string(p), "\n")
				if n, k, ok := parseBig(line, "big"); ok {
					l.backlog(writeBig(c, n, k))
					return
				}
				if n, k, ok := parseBig(line, "off"); ok {
					l.mu.Lock()
					l.offloads++
					l.mu.Unlock()
					c.Offload(func() { l.backlog(writeBig(c, n, k)) })
					return
				}
				switch line {
				case "idle":
					c.SetTimeout(stressIdle)
				case "end":
					l.ended = true
					l.backlog(write(c, []byte("ending\n")))
					c.End()
				case "close":
					l.backlog(write(c, []byte("closing\n")))
					c.Close()
				default:
					l.backlog(write(c, append([]byte("got "), p...)))
				}
			},
			OnEnd: func(c *Conn) {
				l := logOf(c)
				l.add("end")
				l.peerEnded = true
				l.backlog(write(c, []byte("eof\n")))
				if halfOpen && !l.ended {
					c.SetTimeout(stressIdle)
				}
			},
			OnTimeout: func(c *Conn) {
				l := logOf(c)
				l.add("timeout")
				c.SetTimeout(0)
				l.backlog(write(c, []byte("timeout\n")))
				if l.peerEnded {
					c.End()
				}
			},
			OnDrain: func(c *Conn) { logOf(c).add("drain") },
			OnError: func(c *Conn, err error) { logOf(c).addErr("error", err) },
			OnClose: func(c *Conn, hadError bool) {
				l := logOf(c)
				l.add(fmt.Sprint("close ", hadError))
				close(l.closed)
			},
		},
	}
	s.start(t)
	return s
}

// parseBig parses "<verb> N K".
func parseBig(line, verb string) (n, k int, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != verb {
		return 0, 0, false
	}
	n, err1 := strconv.Atoi(f[1])
	k, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || n < 0 || n > stressMaxBig || k <= 0 {
		return 0, 0, false
	}
	return n, k, true
}

// errKind names an error by what it is, not by its text (which holds
// addresses): the tcpkit errors and system errors it wraps.
func errKind(err error) string {
	if err == nil {
		return "no error"
	}
	var kinds []string
	for _, k := range []struct {
		err  error
		name string
	}{
		{ErrWriteAfterEnd, "after-end"},
		{ErrPeerEnded, "peer-ended"},
		{ErrConnClosed, "closed"},
		{ErrReadTimeout, "read-timeout"},
		{ErrWriteTimeout, "write-timeout"},
		{ErrMessageTooLarge, "too-large"},
		{syscall.ECONNRESET, "reset"},
		{syscall.EPIPE, "pipe"},
		{io.EOF, "eof"},
		{os.ErrDeadlineExceeded, "deadline"},
		{net.ErrClosed, "use-of-closed"},
	} {
		if errors.Is(err, k.err) {
			kinds = append(kinds, k.name)
		}
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		kinds = append(kinds, "panic")
	}
	if len(kinds) == 0 {
		return fmt.Sprintf("other(%T)", err)
	}
	return strings.Join(kinds, "+")
}

// Scripts.

type stepKind uint8

const (
	stepSend      stepKind = iota // write text in pieces, read the reply
	stepHalfClose                 // write text, CloseWrite, read the reply and EOF
	stepFinClose                  // Close (a FIN), read nothing
	stepRST                       // SetLinger(0) and Close (a reset)
)

type step struct {
	kind       stepKind
	text       string // what stepSend and stepHalfClose write first
	pieces     []int  // the lengths of its writes
	want       []byte // the reply the model expects, read in full
	wantEOF    bool   // then the server's FIN
	wantClosed bool   // the server closes on a line over MaxMessage: nothing more, then EOF or a reset
}

func (st *step) String() string {
	var b strings.Builder
	if st.text != "" {
		text := st.text
		if len(text) > 100 {
			text = fmt.Sprintf("%s…(%d bytes)…%s", text[:40], len(text)-80, text[len(text)-40:])
		}
		fmt.Fprintf(&b, "send %q in %d writes %v", text, len(st.pieces), st.pieces)
		if st.kind != stepSend {
			b.WriteString(", then ")
		}
	}
	switch st.kind {
	case stepHalfClose:
		b.WriteString("half-close (CloseWrite), read to EOF")
	case stepFinClose:
		b.WriteString("close (FIN)")
	case stepRST:
		b.WriteString("reset (SetLinger(0), Close)")
	}
	return b.String()
}

// short names a step in observations, which must not hold its text twice.
func (st *step) short() string {
	switch st.kind {
	case stepHalfClose:
		return "half-close"
	case stepFinClose:
		return "fin-close"
	case stepRST:
		return "reset"
	}
	return "send"
}

type script struct {
	seed     uint64
	halfOpen bool
	smallBuf bool // the client dials with small SO_RCVBUF and TCP_MAXSEG
	steps    []step
	server   []string // the server events the model expects, drains left out
	bigOver  bool     // some step's reply reaches the high-water mark: OnDrain may fire
}

func (sc *script) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %#x, AllowHalfOpen %v, small client buffers %v, %d steps:\n", sc.seed, sc.halfOpen, sc.smallBuf, len(sc.steps))
	for i := range sc.steps {
		fmt.Fprintf(&b, "  %d. %v\n", i+1, &sc.steps[i])
	}
	return b.String()
}

type genOpts struct {
	maxBig     int  // the largest big reply
	noHalfOpen bool // never AllowHalfOpen (a server shared by several scripts)
	noReset    bool // never end with a reset
	noFINClose bool // never end with a close (FIN) while the server may still write
}

// genScript makes the script of seed, and what the model expects of it.
func genScript(seed uint64, o genOpts) *script {
	r := rand.New(rand.NewPCG(seed, 0x7463706b6974)) // "tcpkit"
	sc := &script{seed: seed, server: []string{"connect"}}
	sc.halfOpen = !o.noHalfOpen && r.IntN(4) == 0
	sc.smallBuf = r.IntN(2) == 0
	m := &model{sc: sc, r: r, o: o}
	n := 3 + r.IntN(10)
	for !m.done {
		if len(sc.steps) >= n-1 {
			m.terminate()
		} else {
			m.next()
		}
	}
	return sc
}

// A model follows the server through a script as it is made: what it
// replies and reports.
type model struct {
	sc *script
	r  *rand.Rand
	o  genOpts

	partial  string // an unfinished line the server holds
	ended    bool   // the server called End: the client has its FIN
	afterEnd bool   // the client sent bytes after that
	done     bool   // the script is over
}

func (m *model) next() {
	r := m.r
	if m.ended { // the server's FIN is in: send lines it can no longer answer, or finish
		switch k := r.IntN(10); {
		case k < 4:
			m.send(m.first() + m.lines(r.IntN(2)) + m.maybePartial(3))
		case k < 5:
			m.tooLong()
		default:
			m.terminate()
		}
		return
	}
	switch k := r.IntN(100); {
	case k < 30: // messages
		m.send(m.first() + m.lines(r.IntN(3)) + m.maybePartial(3))
	case k < 34: // lines of about MaxMessage
		m.send(m.long(stressMaxMsg-r.IntN(3)) + "\n" + m.lines(r.IntN(2)) + m.maybePartial(3))
	case k < 37: // a line over MaxMessage: the server closes
		m.tooLong()
	case k < 52: // a big reply, maybe with more pipelined behind it
		text := m.cont() + m.big("big")
		switch r.IntN(7) {
		case 0:
			text += m.big("big") + m.maybePartial(4)
		case 1, 2:
			text += m.lines(1+r.IntN(2)) + m.maybePartial(4)
		case 3:
			text += "end\n" + m.maybePartial(4) // End with output queued; bytes after it
		case 4:
			text += "idle\n" // the timeout counts from the drain
		default:
			text += m.maybePartial(4)
		}
		m.send(text)
	case k < 59: // a big reply written from Offload; nothing may follow it
		m.send(m.cont() + m.big("off") + m.maybePartial(4))
	case k < 70: // the idle timeout
		m.send(m.cont() + m.lines(r.IntN(2)) + "idle\n")
	case k < 79: // the server ends
		m.send(m.cont() + m.lines(r.IntN(2)) + "end\n" + m.maybePartial(4))
	case k < 83: // the server closes
		m.send(m.cont() + m.lines(r.IntN(2)) + "close\n")
	default:
		m.terminate()
	}
}

// terminate ends the script with one of the ways it may end from here.
func (m *model) terminate() {
	kinds := []stepKind{stepHalfClose}
	if (m.partial == "" || m.ended) && !m.o.noFINClose {
		// Not with an unfinished line the server still answers: the echo
		// goes to a closed socket, whose RST races OnEnd's own write.
		kinds = append(kinds, stepFinClose)
	}
	if !m.afterEnd && !m.o.noReset {
		// Not after bytes the server may not have read yet: a reset
		// races them.
		kinds = append(kinds, stepRST)
	}
	closeCmd := !m.ended && m.partial == ""
	i := m.r.IntN(len(kinds) + btoi(closeCmd))
	if i == len(kinds) {
		m.send("close\n")
		return
	}
	st := step{kind: kinds[i]}
	switch st.kind {
	case stepHalfClose:
		// Maybe with bytes before the FIN, so that it comes while the
		// server is still busy with them: paused, or over the mark.
		var text string
		switch k := m.r.IntN(8); {
		case m.ended && k < 3:
			text = m.first() + m.maybePartial(2)
		case m.ended:
		case k < 2:
			text = m.first() + m.maybePartial(2)
		case k < 4:
			text = m.cont() + m.big("big") + m.lines(m.r.IntN(2)) + m.maybePartial(2)
		case k < 5:
			text = m.cont() + m.big("off") + m.maybePartial(2)
		}
		if text != "" {
			st.text, st.pieces = text, m.cut(len(text))
			m.feed(&st, text)
		}
		m.peerFIN(&st)
	case stepFinClose:
		m.peerFIN(&st)
	case stepRST:
		m.sc.server = append(m.sc.server, "error reset", "close true")
	}
	m.add(st)
	m.done = true
}

// peerFIN is what the server does when the client's FIN comes.
func (m *model) peerFIN(st *step) {
	srv := &m.sc.server
	half := st.kind == stepHalfClose // the client still reads
	st.wantEOF = half
	if m.partial != "" { // delivered at EOF
		*srv = append(*srv, "data "+m.partial)
		if m.ended {
			*srv = append(*srv, "write-err after-end")
		} else {
			st.want = append(st.want, "got "+m.partial...)
		}
		m.partial = ""
	}
	*srv = append(*srv, "end")
	if m.ended { // the 4-way handshake completes
		*srv = append(*srv, "write-err after-end", "close false")
		return
	}
	if half {
		st.want = append(st.want, "eof\n"...)
	}
	if !m.sc.halfOpen {
		*srv = append(*srv, "close false")
		return
	}
	*srv = append(*srv, "timeout")
	if half {
		st.want = append(st.want, "timeout\n"...)
		*srv = append(*srv, "close false")
		return
	}
	// The client closed: "eof\n" came back as a reset, which the server
	// learns, as EPIPE (the RST came in CLOSE_WAIT), at its next write.
	*srv = append(*srv, "write-err pipe", "error pipe", "close true")
}

// tooLong adds a step that sends a line over MaxMessage, finished or not:
// the server closes the connection with ErrMessageTooLarge as soon as it
// has read more than MaxMessage bytes of it, and the script is over.
func (m *model) tooLong() {
	text := m.long(stressMaxMsg + 1 + m.r.IntN(3))
	if m.r.IntN(2) == 0 {
		text += "\n"
	}
	st := step{kind: stepSend, text: text, pieces: m.cut(len(text)), wantClosed: true}
	m.sc.server = append(m.sc.server, "error too-large", "close true")
	m.add(st)
	m.done = true
}

// send adds a step that writes text, with what the server makes of it.
func (m *model) send(text string) {
	st := step{kind: stepSend, text: text, pieces: m.cut(len(text))}
	m.feed(&st, text)
	m.add(st)
}

func (m *model) add(st step) {
	m.sc.bigOver = m.sc.bigOver || len(st.want) >= stressHWM
	m.sc.steps = append(m.sc.steps, st)
}

// feed is what the server makes of text: the replies to its lines, and
// an unfinished line kept.
func (m *model) feed(st *step, text string) {
	if m.ended {
		m.afterEnd = true
	}
	buf := m.partial + text
	for {
		i := strings.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		m.line(st, buf[:i+1])
		buf = buf[i+1:]
	}
	m.partial = buf
}

// line is what the server does with one line.
func (m *model) line(st *step, line string) {
	srv := &m.sc.server
	*srv = append(*srv, "data "+line)
	if m.ended {
		*srv = append(*srv, "write-err after-end") // its echo
		return
	}
	cmd := strings.TrimSuffix(line, "\n")
	for _, verb := range []string{"big", "off"} {
		if n, _, ok := parseBig(cmd, verb); ok {
			st.want = append(st.want, stressPattern()[:n]...)
			return
		}
	}
	switch cmd {
	case "idle":
		*srv = append(*srv, "timeout")
		st.want = append(st.want, "timeout\n"...)
	case "end":
		st.want = append(st.want, "ending\n"...)
		st.wantEOF = true
		m.ended = true
	case "close":
		st.want = append(st.want, "closing\n"...)
		st.wantEOF = true
		*srv = append(*srv, "close false")
		m.done = true
	default:
		st.want = append(st.want, "got "+line...)
	}
}

// msg returns a message line: never a command, since it starts "m:" (or
// is empty).
func (m *model) msg() string {
	if m.r.IntN(10) == 0 {
		return "\n"
	}
	return "m:" + m.word() + "\n"
}

// first returns the first line of a step: a message, which finishes the
// unfinished line if there is one.
func (m *model) first() string {
	if m.partial != "" {
		return m.word() + "\n"
	}
	return m.msg()
}

// cont returns the end of the unfinished line, if there is one, so that
// what follows starts a line.
func (m *model) cont() string {
	if m.partial != "" {
		return m.word() + "\n"
	}
	return ""
}

func (m *model) lines(n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(m.msg())
	}
	return b.String()
}

// maybePartial returns, one time in odds, an unfinished line.
func (m *model) maybePartial(odds int) string {
	if m.r.IntN(odds) != 0 {
		return ""
	}
	return "m:" + m.word()
}

func (m *model) word() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
	b := make([]byte, m.r.IntN(13))
	for i := range b {
		b[i] = alphabet[m.r.IntN(len(alphabet))]
	}
	return string(b)
}

// long returns the first line of a step, without its '\n', such that
// with the unfinished line before it the line is n bytes long.
func (m *model) long(n int) string {
	prefix := "m:"
	if m.partial != "" {
		prefix = ""
	}
	b := []byte(prefix)
	for len(m.partial)+len(b) < n {
		b = append(b, 'a'+byte(m.r.IntN(26)))
	}
	return string(b)
}

// big returns a request for a reply: under the high-water mark, over it,
// or far over it; written in up to 64 Writes.
func (m *model) big(verb string) string {
	r := m.r
	var n int
	switch k := r.IntN(10); {
	case k < 4:
		n = 1 + r.IntN(stressHWM-1)
	case k < 8:
		n = stressHWM + r.IntN(min(128<<10, m.o.maxBig)-stressHWM+1)
	default:
		n = 1 + r.IntN(m.o.maxBig)
	}
	k := max(1+r.IntN(n), n/64)
	return fmt.Sprintf("%s %d %d\n", verb, n, k)
}

// cut splits n bytes into the lengths of the writes that send them: one
// write, tiny ones, or ones of any size.
func (m *model) cut(n int) []int {
	r := m.r
	var pieces []int
	for n > 0 {
		var k int
		switch r.IntN(3) {
		case 0:
			k = n
		case 1:
			k = 1 + r.IntN(4)
		default:
			k = 1 + r.IntN(n)
		}
		k = min(k, n)
		pieces = append(pieces, k)
		n -= k
	}
	return pieces
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Running a script.

// An observation is what one engine did with a script.
type observation struct {
	client     []string // per step run, how its reply compared with the model's
	server     []string // the server's events, drains left out
	drains     int
	backlogged int
	offloads   int
	errs       []string // the server's error texts, for failure messages
}

// run runs sc against s as a client, and waits for the server to close
// the connection.
func (sc *script) run(s *stressServer) observation {
	var o observation
	conn, err := s.connect(sc.smallBuf)
	if err != nil {
		o.client = append(o.client, "connect: "+errKind(err)+": "+err.Error())
		return o
	}
	l := s.log(conn.key)
	closed := false
	for i := range sc.steps {
		st := &sc.steps[i]
		conn.SetDeadline(time.Now().Add(waitTime))
		res, ok := "ok", true
		text := []byte(st.text)
		for _, n := range st.pieces {
			if _, err := conn.Write(text[:n]); err != nil {
				// Expected once a line over MaxMessage made the
				// server close: how far the client got is timing.
				if !st.wantClosed {
					res, ok = "write: "+errKind(err), false
				}
				break
			}
			text = text[n:]
		}
		switch {
		case !ok:
		case st.wantClosed:
			res, ok = readClosed(conn)
		case st.kind == stepSend:
			res, ok = readReply(conn, st.want, st.wantEOF)
		case st.kind == stepHalfClose:
			if err := conn.closeWrite(); err != nil {
				res, ok = "CloseWrite: "+errKind(err), false
			} else {
				res, ok = readReply(conn, st.want, st.wantEOF)
			}
		case st.kind == stepFinClose:
			conn.Close()
			closed = true
		case st.kind == stepRST:
			conn.reset()
			closed = true
		}
		o.client = append(o.client, fmt.Sprintf("%d %s: %s", i+1, st.short(), res))
		if !ok {
			o.client = append(o.client, "(script stopped)")
			break
		}
	}
	if !closed {
		conn.Close()
	}
	timer := time.NewTimer(waitTime)
	defer timer.Stop()
	select {
	case <-l.closed:
	case <-timer.C:
		o.client = append(o.client, fmt.Sprintf("server connection not closed within %v", waitTime))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e == "drain" {
			o.drains++
		} else {
			o.server = append(o.server, e)
		}
	}
	o.backlogged = l.backlogged
	o.offloads = l.offloads
	o.errs = slices.Clone(l.errs)
	return o
}

// smallBuffers makes the client's socket, before it connects, one that
// makes the server queue: a small receive buffer, so a small window, and
// a small MSS. (On loopback the MSS is near 64 KiB, and Linux sizes a new
// connection's send buffer for ten segments of it, twice over: the server's
// kernel would take a mebibyte reply at once, and nothing would queue.)
func smallBuffers(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = errors.Join(
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10),
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 1<<10))
	})
	return errors.Join(err, serr)
}

// readReply reads len(want) bytes, then EOF if wantEOF, and says how that
// compared with the model; ok is false if the stream cannot go on.
func readReply(conn net.Conn, want []byte, wantEOF bool) (res string, ok bool) {
	got := make([]byte, len(want))
	n, err := io.ReadFull(conn, got)
	got = got[:n]
	if !bytes.Equal(got, want) || err != nil {
		return describeMismatch(got, want) + ", then " + errKind(err), false
	}
	if !wantEOF {
		return "ok", true
	}
	extra := make([]byte, 256)
	n, err = conn.Read(extra)
	if n == 0 && err == io.EOF {
		return "ok", true
	}
	return fmt.Sprintf("reply ok, then %q and %s instead of EOF", extra[:n], errKind(err)), false
}

// readClosed reads what comes after a line over MaxMessage: nothing, then
// the end of the stream, as EOF or as a reset (the server closed with the
// rest of the line unread), which are one here.
func readClosed(conn net.Conn) (res string, ok bool) {
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if n == 0 && (err == io.EOF || errors.Is(err, syscall.ECONNRESET)) {
		return "ok", true // the script ends here
	}
	return fmt.Sprintf("read %q and %s instead of the end of the stream", buf[:n], errKind(err)), false
}

// describeMismatch says how got differs from want, briefly: a reply may
// be a mebibyte.
func describeMismatch(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	clip := func(p []byte) []byte { return p[max(0, i-16):min(len(p), i+48)] }
	return fmt.Sprintf("read %d bytes of %d; first difference at byte %d: got %q, want %q",
		len(got), len(want), i, clip(got), clip(want))
}

// model returns the observation the script's model expects.
func (sc *script) model() observation {
	o := observation{server: sc.server}
	for i := range sc.steps {
		o.client = append(o.client, fmt.Sprintf("%d %s: ok", i+1, sc.steps[i].short()))
	}
	return o
}

func (o observation) same(p observation) bool {
	return slices.Equal(o.client, p.client) && slices.Equal(o.server, p.server)
}

func (o observation) String() string {
	var b strings.Builder
	b.WriteString("  client:\n")
	for _, s := range o.client {
		fmt.Fprintf(&b, "    %s\n", s)
	}
	b.WriteString("  server:\n")
	for _, s := range o.server {
		fmt.Fprintf(&b, "    %q\n", s)
	}
	fmt.Fprintf(&b, "  drains %d, big replies in which a Write saw NeedDrain: %d\n", o.drains, o.backlogged)
	for _, e := range o.errs {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	return b.String()
}

// drainProblem checks o's drains against what sc allows (see the top of
// the file), or returns "".
func (o observation) drainProblem(sc *script, engine Engine) string {
	switch {
	case o.drains > 0 && !sc.bigOver:
		return fmt.Sprintf("%d drains, but no reply reached the high-water mark", o.drains)
	case o.backlogged > 0 && o.drains == 0:
		return "a Write saw NeedDrain, but OnDrain never fired"
	case engine == EngineEpoll && o.offloads == 0 && o.drains > o.backlogged:
		// On the loop nothing flushes while a callback runs, so a
		// queue over the mark shows in the callback that filled it,
		// and empties (one drain) only after it returned. (On the std
		// engine the flush goroutine may drain it meanwhile and the
		// next Write queue again; and so does the loop on either
		// engine while an offloaded function writes.)
		return fmt.Sprintf("%d drains, but only %d big replies saw NeedDrain", o.drains, o.backlogged)
	}
	return ""
}

// checkEngines compares the std and epoll engines' observations of sc,
// and each with the model.
func checkEngines(t testing.TB, sc *script, std, ep observation, rerun string) {
	t.Helper()
	want := sc.model()
	var problems []string
	if !std.same(ep) {
		problems = append(problems, "the engines disagree")
	}
	for _, e := range []struct {
		engine Engine
		o      observation
	}{{EngineStd, std}, {EngineEpoll, ep}} {
		if !e.o.same(want) {
			problems = append(problems, fmt.Sprintf("%v differs from the script's model", e.engine))
		}
		if p := e.o.drainProblem(sc, e.engine); p != "" {
			problems = append(problems, fmt.Sprintf("%v: %s", e.engine, p))
		}
	}
	if len(problems) > 0 {
		t.Errorf("seed %#x: %s (rerun: %s)\nscript: %v\nstd:\n%v\nepoll:\n%v\nmodel:\n%v",
			sc.seed, strings.Join(problems, "; "), rerun, sc, std, ep, want)
	}
}

// runSeed runs seed's script on a fresh server of each engine, both at
// once, over tr, and compares.
func runSeed(t *testing.T, seed uint64, tr stressTransport, o genOpts, rerun string) {
	sc := genScript(seed, tr.genOpts(o))
	std := startStressServer(t, EngineStd, tr, sc.halfOpen, 0)
	ep := startStressServer(t, EngineEpoll, tr, sc.halfOpen, 1+int(seed%2))
	var obs [2]observation
	var wg sync.WaitGroup
	for i, s := range []*stressServer{std, ep} {
		wg.Go(func() { obs[i] = sc.run(s) })
	}
	wg.Wait()
	checkEngines(t, sc, obs[0], obs[1], rerun)
}

// warmFDs counts open fds after the runtime's poller has been set up, so
// that a later count is not one higher for it.
func warmFDs(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return openFDs(t)
}

// TestEnginesAgree runs 150 seeds over plain TCP, and 50 over each other
// transport (40 and 15 with -short).
func TestEnginesAgree(t *testing.T) {
	fds := warmFDs(t)
	t.Run("seeds", func(t *testing.T) {
		for _, tr := range stressTransports {
			seeds := 50
			if tr == overTCP {
				seeds = 150
			}
			if testing.Short() {
				seeds = max(15, seeds/4)
			}
			t.Run(string(tr), func(t *testing.T) {
				for i := range seeds {
					seed := uint64(i)
					name := fmt.Sprintf("%#x", seed)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						runSeed(t, seed, tr, genOpts{maxBig: stressMaxBig},
							fmt.Sprintf("go test -run 'TestEnginesAgree/seeds/%s/^%s$' .", tr, name))
					})
				}
			})
		}
	})
	waitDialLoops(t)
	waitUntil(t, "the scripts' fds to be closed", func() bool { return openFDs(t) <= fds })
}

// FuzzEngines runs a seed's script over every transport.
func FuzzEngines(f *testing.F) {
	for _, seed := range []uint64{0, 1, 0x2a, 0xfeed, 0xdeadbeef, 1 << 63} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		for _, tr := range stressTransports {
			t.Run(string(tr), func(t *testing.T) {
				runSeed(t, seed, tr, genOpts{maxBig: stressMaxBig},
					"go test -run FuzzEngines . (a failing input is kept in testdata/fuzz/FuzzEngines)")
			})
		}
	})
}

// TestEnginesAgreeConcurrent runs 50 scripts at once on one server of each
// engine, the epoll one with two loops, so that the loops serve many
// connections whose steps interleave; each connection must still see what
// it sees on the std engine.
func TestEnginesAgreeConcurrent(t *testing.T) {
	n := 50
	if testing.Short() {
		n = 20
	}
	fds := warmFDs(t)
	for _, tr := range stressTransports {
		t.Run(string(tr), func(t *testing.T) {
			o := tr.genOpts(genOpts{maxBig: 256 << 10, noHalfOpen: true})
			std := startStressServer(t, EngineStd, tr, false, 0)
			ep := startStressServer(t, EngineEpoll, tr, false, 2)
			scripts := make([]*script, n)
			obs := make([][2]observation, n)
			var wg sync.WaitGroup
			for i := range n {
				scripts[i] = genScript(0x10000+uint64(i), o)
				for e, s := range []*stressServer{std, ep} {
					wg.Go(func() { obs[i][e] = scripts[i].run(s) })
				}
			}
			wg.Wait()
			for i, sc := range scripts {
				checkEngines(t, sc, obs[i][0], obs[i][1], fmt.Sprintf("go test -run TestEnginesAgreeConcurrent/%s .", tr))
			}
		})
	}
	waitDialLoops(t)
	waitUntil(t, "the scripts' fds to be closed", func() bool { return openFDs(t) <= fds })
}

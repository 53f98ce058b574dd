package tcpkit

import (
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// traceLog collects trace events as "kind bytes", in order.
type traceLog struct {
	mu     sync.Mutex
	events []TraceEvent
}

func (l *traceLog) add(ev TraceEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

func (l *traceLog) kinds() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.events {
		s := ev.Kind.String()
		if ev.Bytes > 0 {
			s += " " + strconv.Itoa(ev.Bytes)
		}
		out = append(out, s)
	}
	return out
}

// The seed's scenario traced on both sides: the handshake, the data each
// way, the server's FIN first and the client's in answer, the close, and
// the client's failed write after it.
func TestTraceSeedScenario(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		var srvLog, cliLog traceLog
		srvRec := newRecorder()
		addr := startServer(t, &Server{
			Engine:      e,
			Events:      srvRec.record(seedEnding()),
			ConnOptions: ConnOptions{Trace: srvLog.add},
		})
		d := Dialer{ConnOptions: ConnOptions{Trace: cliLog.add}}
		c, err := d.Dial(t.Context(), "tcp", addr, Events{})
		if err != nil {
			t.Fatal(err)
		}
		c.Write(testing_)
		waitDone(t, c)
		srvRec.wait(t, "close false")
		_, werr := c.Write(testing_)
		if !errors.Is(werr, syscall.EPIPE) {
			t.Fatalf("write after close: %v, want EPIPE", werr)
		}

		wantSrv := []string{"connected", "read 8", "write 4", "fin", "peer-fin", "closed"}
		wantCli := []string{"connected", "write 8", "read 4", "peer-fin", "fin", "closed", "write-failed 8"}
		if got := srvLog.kinds(); !slices.Equal(got, wantSrv) {
			t.Errorf("server trace %q, want %q", got, wantSrv)
		}
		if got := cliLog.kinds(); !slices.Equal(got, wantCli) {
			t.Errorf("client trace %q, want %q", got, wantCli)
		}
		if cliLog.events[0].Duration <= 0 {
			t.Errorf("client connected event: connect duration %v, want > 0", cliLog.events[0].Duration)
		}
		if last := cliLog.events[len(cliLog.events)-1]; !errors.Is(last.Err, ErrPeerEnded) {
			t.Errorf("write-failed event: %v, want ErrPeerEnded", last.Err)
		}
		if runtime.GOOS == "linux" {
			info := srvLog.events[0].Info
			if info == nil || info.State != "ESTABLISHED" {
				t.Errorf("server connected event TCP_INFO %+v, want state ESTABLISHED", info)
			}
			// After our FIN the state is FIN_WAIT1, or later if the client's
			// FIN was quick: never ESTABLISHED.
			if info := srvLog.events[3].Info; info == nil || info.State == "ESTABLISHED" {
				t.Errorf("server fin event TCP_INFO %+v, want a state past ESTABLISHED", info)
			}
		}
	})
}

// A reset from the peer is traced as a reset, with ECONNRESET.
func TestTraceReset(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		var srvLog traceLog
		srvRec := newRecorder()
		addr := startServer(t, &Server{Engine: e, Events: srvRec.record(Events{}), ConnOptions: ConnOptions{Trace: srvLog.add}})
		nc := rawDial(t, addr)
		nc.Write([]byte("hi"))
		srvRec.wait(t, "data hi")
		nc.SetLinger(0)
		nc.Close()
		srvRec.wait(t, "close true")
		want := []string{"connected", "read 2", "reset", "closed"}
		if got := srvLog.kinds(); !slices.Equal(got, want) {
			t.Errorf("trace %q, want %q", got, want)
		}
		if ev := srvLog.events[2]; !errors.Is(ev.Err, syscall.ECONNRESET) {
			t.Errorf("reset event error %v, want ECONNRESET", ev.Err)
		}
	})
}

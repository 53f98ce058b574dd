//go:build unix

package tcpkit

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// shortTempDir is a temporary directory with a path short enough for a
// Unix socket's (108 bytes).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// A server on a Unix socket: the seed's exchange, with the addresses the
// net package gives: the peer "@" when it bound no name, or its name, and
// the socket's path as the local address.
func TestUnixSocketServer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		dir := shortTempDir(t)
		path := filepath.Join(dir, "s")
		rec := newRecorder()
		addr := startServerOn(t, &Server{Engine: e, Events: rec.record(Events{
			OnConnect: func(c *Conn) {
				rec.add("from " + c.RemoteAddr().Network() + ":" + c.RemoteAddr().String() + " to " + c.LocalAddr().String())
			},
			OnData: func(c *Conn, p []byte) { c.Write(test); c.End() },
		})}, "unix", path)
		named := filepath.Join(dir, "client")
		for i, laddr := range []*net.UnixAddr{nil, {Name: named, Net: "unix"}} {
			nc, err := net.DialUnix("unix", laddr, &net.UnixAddr{Name: addr, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			nc.SetDeadline(time.Now().Add(waitTime))
			nc.Write(testing_)
			if got, err := io.ReadAll(nc); err != nil || string(got) != "test" {
				t.Errorf("client read %q, %v; want \"test\" then EOF", got, err)
			}
			nc.Close()
			rec.waitN(t, "close false", i+1)
		}
		assertEvents(t, "server", rec.events(), []string{
			"connect", "from unix:@ to " + path, "data testing~", "end", "close false",
			"connect", "from unix:" + named + " to " + path, "data testing~", "end", "close false",
		})
	})
}

// Dial on a Unix socket, on either engine: the seed's exchange from the
// client's side.
func TestUnixSocketDial(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		path := filepath.Join(shortTempDir(t), "s")
		addr := startServerOn(t, &Server{Engine: EngineStd, Events: seedEvents()}, "unix", path)
		rec := newRecorder()
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		d := Dialer{Engine: e}
		c, err := d.Dial(ctx, "unix", addr, rec.record(Events{}))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().String(); got != path {
			t.Errorf("RemoteAddr = %s, want %s", got, path)
		}
		c.Write(testing_)
		waitDone(t, c)
		assertEvents(t, "client", rec.events(), []string{"connect", "data test", "end", "close false"})
	})
}

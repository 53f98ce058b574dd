package tcpkit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testTLS is a server configuration with a self-signed certificate for
// 127.0.0.1, ::1 and localhost, and a client configuration that trusts
// it; made once.
var testTLS = sync.OnceValue(func() (cfgs struct{ server, client *tls.Config }) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tcpkit test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cfgs.server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	cfgs.client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return cfgs
})

// tlsServer returns a Handshake that completes TLS with testTLS's
// server configuration within waitTime.
func tlsServer() func(net.Conn) (net.Conn, error) {
	return func(nc net.Conn) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		tc := tls.Server(nc, testTLS().server)
		return tc, tc.HandshakeContext(ctx)
	}
}

// tlsDial opens a raw TLS client connection to addr.
func tlsDial(t *testing.T, addr string) *tls.Conn {
	t.Helper()
	nc := rawDial(t, addr)
	tc := tls.Client(nc, testTLS().client)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return tc
}

// The seed's exchange over TLS: End sends close_notify, then the FIN,
// and the connection closes cleanly once the client ends in turn.
func TestTLSEndIsCloseNotifyThenFIN(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		addr := startServer(t, &Server{Engine: e, Handshake: tlsServer(), Events: rec.record(seedEvents())})
		tc := tlsDial(t, addr)
		if _, err := tc.Write(testing_); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(tc)
		if err != nil || string(got) != "test" {
			t.Fatalf("client read %q, %v; want \"test\", then close_notify (EOF)", got, err)
		}
		// Beneath TLS: the FIN follows the alert.
		if n, err := tc.NetConn().Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("after close_notify the socket read %d bytes, %v; want the FIN (EOF)", n, err)
		}
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		tc.NetConn().(*net.TCPConn).CloseWrite()
		rec.wait(t, "close false")
		assertEvents(t, "server", rec.events(), []string{"connect", "data testing~", "end", "close false"})
	})
}

// What was written right before Close goes out over TLS as over plain
// TCP: the kernel takes it at Write.
func TestTLSWriteThenClose(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		addr := startServer(t, &Server{Engine: e, Handshake: tlsServer(), Events: Events{
			OnData: func(c *Conn, p []byte) { c.Write([]byte("bye")); c.Close() },
		}})
		for range 20 {
			tc := tlsDial(t, addr)
			tc.Write(testing_)
			if got, err := io.ReadAll(tc); err != nil || string(got) != "bye" {
				t.Fatalf("client read %q, %v; want \"bye\" then the end", got, err)
			}
		}
	})
}

// A TLS client dialed on either engine, against a TLS server on either:
// a mebibyte each way, in order, with the backpressure of a high-water
// mark, then a clean end.
func TestTLSDialBigExchange(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, se := range engines {
		t.Run("server-"+se.String(), func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, de Engine) { // the client's
				addr := startServer(t, &Server{Engine: se, Handshake: tlsServer(), Events: Events{
					OnData: func(c *Conn, p []byte) { c.Write(p) }, // echo, pausing when over the mark
				}})
				got := make(chan []byte, 1)
				var buf []byte
				d := Dialer{Engine: de, Handshake: func(ctx context.Context, nc net.Conn) (net.Conn, error) {
					tc := tls.Client(nc, testTLS().client)
					return tc, tc.HandshakeContext(ctx)
				}}
				ctx, cancel := context.WithTimeout(context.Background(), waitTime)
				defer cancel()
				c, err := d.Dial(ctx, "tcp", addr, Events{
					OnData: func(c *Conn, p []byte) {
						buf = append(buf, p...)
						if len(buf) == len(big) {
							c.End()
						}
					},
					OnClose: func(c *Conn, hadError bool) { got <- buf },
				})
				if err != nil {
					t.Fatal(err)
				}
				for off := 0; off < len(big); off += 100 << 10 {
					c.Write(big[off:min(off+100<<10, len(big))])
					if err := c.WaitDrain(ctx); err != nil {
						t.Fatalf("WaitDrain: %v", err)
					}
				}
				select {
				case b := <-got:
					if !bytes.Equal(b, big) {
						t.Errorf("the echo came back as %d bytes, want the %d sent, in order", len(b), len(big))
					}
				case <-time.After(waitTime):
					t.Fatalf("no clean end within %v", waitTime)
				}
				if err := c.Err(); err != nil {
					t.Errorf("client error %v, want none", err)
				}
			})
		})
	}
}

// A TLS client that reads nothing: the server's output makes no progress
// for WriteTimeout and the connection is cut, as on plain TCP.
func TestTLSWriteTimeout(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		errs := make(chan error, 1)
		addr := startServer(t, &Server{Engine: e, Handshake: tlsServer(),
			ConnOptions: ConnOptions{WriteTimeout: 100 * time.Millisecond},
			Events: Events{
				OnConnect: func(c *Conn) { c.Write(make([]byte, 8<<20)) },
				OnError:   func(c *Conn, err error) { errs <- err },
			}})
		tlsDial(t, addr) // and read nothing
		select {
		case err := <-errs:
			if !errors.Is(err, ErrWriteTimeout) {
				t.Errorf("OnError(%v), want ErrWriteTimeout", err)
			}
		case <-time.After(waitTime):
			t.Fatalf("no write timeout within %v", waitTime)
		}
	})
}

// A client that speaks plain text to a TLS server fails the Handshake:
// OnReject is told crypto/tls's error, and nothing is served.
func TestTLSPlainTextClientRejected(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e Engine) {
		rec := newRecorder()
		rj := newRejections()
		addr := startServer(t, &Server{Engine: e, Handshake: tlsServer(), Events: rec.record(seedEvents()), OnReject: rj.onReject})
		nc := rawDial(t, addr)
		nc.Write([]byte("testing~\n"))
		got := rj.next(t)
		var rhe tls.RecordHeaderError
		if !errors.As(got.err, &rhe) || got.remote != nc.LocalAddr().String() {
			t.Errorf("OnReject(%s, %v), want (%s, a tls.RecordHeaderError)", got.remote, got.err, nc.LocalAddr())
		}
		io.ReadAll(nc)
		assertEvents(t, "server", rec.events(), nil)
	})
}

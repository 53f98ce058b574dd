package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// tlsHandshakeTimeout bounds a TLS handshake: serve's default for
// --tls-handshake-timeout, and a client's when nothing else bounds it.
const tlsHandshakeTimeout = 5 * time.Second

// plaintextHint is what a TLS server writes, in plain text, to a client
// that did not speak TLS, so that the client's user sees why.
const plaintextHint = "tcpkit: this server speaks TLS; connect with --tls\n"

// serverTLS loads a certificate and key for serve --tls-cert/--tls-key.
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load the TLS certificate and key: %w (make a pair for testing with 'tcpkit cert')", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// tlsServerHandshake completes the server side of a TLS handshake within
// timeout. A client that sent plain text gets a line saying so.
func tlsServerHandshake(cfg *tls.Config, timeout time.Duration) func(net.Conn) (net.Conn, error) {
	return func(nc net.Conn) (net.Conn, error) {
		tc := tls.Server(nc, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			var rhe tls.RecordHeaderError
			switch {
			case errors.As(err, &rhe) && rhe.Conn != nil:
				rhe.Conn.Write([]byte(plaintextHint))
				return nil, errors.New("TLS handshake failed: the client spoke plain text, not TLS")
			case errors.Is(err, context.DeadlineExceeded):
				return nil, fmt.Errorf("TLS handshake timed out after %v (--tls-handshake-timeout): the client did not finish it; a plain-TCP client waiting for the server to speak first?", timeout)
			}
			return nil, fmt.Errorf("TLS handshake failed: %w", err)
		}
		return tc, nil
	}
}

// clientTLS makes connect --tls's configuration: Go's defaults, verifying
// the server against the system's roots, or --ca, unless --insecure.
func clientTLS(serverName, caFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// firstByteConn remembers the first byte the peer sent: a TLS server's
// first record is a handshake (0x16) or an alert (0x15); anything else
// was plain text, even a reply too short for a record header.
type firstByteConn struct {
	net.Conn
	first int // -1 until a byte arrives
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.first < 0 {
		c.first = int(p[0])
	}
	return n, err
}

func (c *firstByteConn) plainText() bool { return c.first >= 0 && c.first != 0x15 && c.first != 0x16 }

// tlsClientHandshake completes the client side of a TLS handshake,
// within ctx's deadline (connect's --connect-timeout) or, without one,
// tlsHandshakeTimeout.
func tlsClientHandshake(cfg *tls.Config) func(context.Context, net.Conn) (net.Conn, error) {
	return func(ctx context.Context, nc net.Conn) (net.Conn, error) {
		fb := &firstByteConn{Conn: nc, first: -1}
		tc := tls.Client(fb, cfg)
		start := time.Now()
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tlsHandshakeTimeout)
			defer cancel()
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			var rhe tls.RecordHeaderError
			var cve *tls.CertificateVerificationError
			switch {
			case errors.As(err, &rhe), fb.plainText():
				return nil, errors.New("TLS handshake failed: the server answered in plain text; it does not speak TLS (drop --tls)")
			case errors.Is(err, context.DeadlineExceeded):
				return nil, fmt.Errorf("TLS handshake timed out after %v: the server sent no TLS answer; is it a plain-TCP server waiting for the client to speak first? (drop --tls)", time.Since(start).Round(100*time.Millisecond))
			case errors.As(err, &cve):
				return nil, fmt.Errorf("TLS handshake failed: %w; trust the server's certificate with --ca FILE, or skip the check with --insecure", err)
			}
			return nil, fmt.Errorf("TLS handshake failed: %w", err)
		}
		return tc, nil
	}
}

// isTLSError reports whether a rejection came from the TLS handshake.
func isTLSError(err error) bool { return strings.HasPrefix(err.Error(), "TLS handshake ") }

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// tlsHandshakeTimeout bounds a TLS handshake: serve's default for
// --tls-handshake-timeout, and a client's when nothing else bounds it.
const tlsHandshakeTimeout = 5 * time.Second

// plaintextHint is what a TLS server writes, in plain text, to a client
// that did not speak TLS, so that the client's user sees why.
const plaintextHint = "tcpkit: this server speaks TLS; connect with --tls\n"

// serverTLS loads a certificate and key for serve --tls-cert/--tls-key,
// and with clientCA (--client-ca) requires each client to present a
// certificate that the CAs in that file signed.
func serverTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cannot load the TLS certificate and key: %w (make a pair for testing with 'tcpkit cert')", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		if cfg.ClientCAs, err = loadPool(clientCA); err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// loadPool reads the PEM certificates in file.
func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", file, explainPathErr(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
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
			case cfg.ClientAuth == tls.RequireAndVerifyClientCert && strings.Contains(err.Error(), "didn't provide a certificate"):
				return nil, errors.New("TLS handshake failed: the client sent no certificate, and --client-ca requires one")
			case cfg.ClientAuth == tls.RequireAndVerifyClientCert && errors.As(err, new(*tls.CertificateVerificationError)):
				return nil, fmt.Errorf("TLS handshake failed: the client's certificate is not one --client-ca trusts: %w", err)
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return nil, errors.New("TLS handshake failed: the client closed the connection before the handshake was done")
			case errors.Is(err, syscall.ECONNRESET):
				return nil, errors.New("TLS handshake failed: the client reset the connection before the handshake was done (ECONNRESET)")
			}
			return nil, fmt.Errorf("TLS handshake failed: %w", err)
		}
		return tc, nil
	}
}

// isTLSError reports whether a rejection came from the TLS handshake.
func isTLSError(err error) bool { return strings.HasPrefix(err.Error(), "TLS handshake ") }

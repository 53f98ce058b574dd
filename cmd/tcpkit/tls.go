package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tlsHandshakeTimeout bounds a TLS handshake on either side.
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

// tlsServerHandshake completes the server side of a TLS handshake. A
// client that sent plain text gets a line saying so.
func tlsServerHandshake(cfg *tls.Config) func(net.Conn) (net.Conn, error) {
	return func(nc net.Conn) (net.Conn, error) {
		tc := tls.Server(nc, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			var rhe tls.RecordHeaderError
			if errors.As(err, &rhe) && rhe.Conn != nil {
				rhe.Conn.Write([]byte(plaintextHint))
				return nil, errors.New("TLS handshake failed: the client spoke plain text, not TLS")
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

// tlsClientHandshake completes the client side of a TLS handshake.
func tlsClientHandshake(cfg *tls.Config) func(context.Context, net.Conn) (net.Conn, error) {
	return func(ctx context.Context, nc net.Conn) (net.Conn, error) {
		fb := &firstByteConn{Conn: nc, first: -1}
		tc := tls.Client(fb, cfg)
		ctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			var rhe tls.RecordHeaderError
			var cve *tls.CertificateVerificationError
			switch {
			case errors.As(err, &rhe), fb.plainText():
				return nil, errors.New("TLS handshake failed: the server answered in plain text; it does not speak TLS (drop --tls)")
			case errors.As(err, &cve):
				return nil, fmt.Errorf("TLS handshake failed: %w; trust the server's certificate with --ca FILE, or skip the check with --insecure", err)
			}
			return nil, fmt.Errorf("TLS handshake failed: %w", err)
		}
		return tc, nil
	}
}

const certUsage = `Usage: tcpkit cert [flags]

Write a self-signed certificate and its key, for testing TLS locally:
serve --tls-cert cert.pem --tls-key key.pem, and connect --tls --ca
cert.pem. The certificate is for localhost, 127.0.0.1 and ::1 (and
--host), valid for --days. Not for production: use your CA's.

Flags:
`

func certCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cert", certUsage, stdout)
	dir := fs.String("out", ".", "write cert.pem and key.pem into this `directory`")
	hosts := fs.String("host", "", "more host `names` or IPs for the certificate, comma-separated")
	days := fs.Int("days", 365, "how many `days` the certificate is valid")
	pos, err := fs.parse(args, stderr)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) > 0 || *days < 1 {
		return usageError(stderr, "cert", "no arguments are taken, and --days must be at least 1")
	}
	names := []string{"localhost", "127.0.0.1", "::1"}
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			names = append(names, h)
		}
	}
	certFile, keyFile := filepath.Join(*dir, "cert.pem"), filepath.Join(*dir, "key.pem")
	if err := writeSelfSigned(certFile, keyFile, names, time.Duration(*days)*24*time.Hour); err != nil {
		fmt.Fprintf(stderr, "tcpkit cert: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote %s and %s for %s\n", certFile, keyFile, strings.Join(names, ", "))
	return exitOK
}

// writeSelfSigned writes an ECDSA P-256 certificate for names and its key.
func writeSelfSigned(certFile, keyFile string, names []string, valid time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"tcpkit self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(valid),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so that --ca cert.pem can verify it
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// isTLSError reports whether a rejection came from the TLS handshake.
func isTLSError(err error) bool { return strings.HasPrefix(err.Error(), "TLS handshake failed") }

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

// tlsClientFlags are a TLS client's options, with the same names and
// meanings wherever tcpkit connects: connect takes them, and bench can
// take the same with define, check and config.
type tlsClientFlags struct {
	on, insecure       bool
	ca, sni, cert, key string
	alpn               string
}

// tlsOnlyFlags are the flags that mean something only with --tls.
var tlsOnlyFlags = []string{"insecure", "ca", "sni", "cert", "key", "alpn"}

// define adds the TLS client's flags to fs.
func (o *tlsClientFlags) define(fs *flagSet) {
	fs.BoolVar(&o.on, "tls", false, "speak TLS (1.2 or later), verifying the server's certificate")
	fs.BoolVar(&o.insecure, "insecure", false, "with --tls, do not verify the server's certificate")
	fs.StringVar(&o.ca, "ca", "", "with --tls, trust the certificates in this PEM `file` (as made by 'tcpkit cert')")
	fs.StringVar(&o.sni, "sni", "", "with --tls, the server `name` to send (SNI) and to verify its certificate against (default: the host connected to)")
	fs.StringVar(&o.cert, "cert", "", "with --tls, present this client certificate `file` (PEM); with --key")
	fs.StringVar(&o.key, "key", "", "with --tls, the client certificate's key `file` (PEM)")
	fs.StringVar(&o.alpn, "alpn", "", "with --tls, offer these application `protocols` (ALPN), comma-separated, such as h2,http/1.1; the one the server picks is printed on stderr")
}

// check reports a usage error in the flags fs parsed.
func (o *tlsClientFlags) check(fs *flagSet) error {
	if !o.on {
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || slices.Contains(tlsOnlyFlags, f.Name) })
		if given {
			return errors.New("--insecure, --ca, --sni, --cert, --key and --alpn go with --tls")
		}
		return nil
	}
	if (o.cert == "") != (o.key == "") {
		return errors.New("give both --cert and --key, or neither")
	}
	return nil
}

// config returns the configuration for a TLS connection to addr
// (HOST:PORT, or a Unix socket's path), or nil without --tls. The
// server's certificate is verified against the system's roots, or --ca,
// for the --sni name or else addr's host, unless --insecure.
func (o *tlsClientFlags) config(addr string) (*tls.Config, error) {
	if !o.on {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecure, ServerName: o.sni}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	if cfg.ServerName == "" && !o.insecure {
		return nil, errors.New("--tls without a host name (a Unix socket) needs --sni NAME, the name to verify the server's certificate against, or --insecure")
	}
	var err error
	if o.ca != "" {
		if cfg.RootCAs, err = loadPool(o.ca); err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
	}
	if o.cert != "" {
		pair, err := loadPair(o.cert, o.key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.alpn != "" {
		for _, p := range strings.Split(o.alpn, ",") {
			if p = strings.TrimSpace(p); p == "" || len(p) > 255 {
				return nil, fmt.Errorf("--alpn %q: give protocol names of 1 to 255 bytes, comma-separated, such as h2,http/1.1", o.alpn)
			}
			cfg.NextProtos = append(cfg.NextProtos, p)
		}
	}
	return cfg, nil
}

// loadPair reads a certificate and its key (--cert, --key).
func loadPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--cert %s: %s", certFile, explainPathErr(err))
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--key %s: %s", keyFile, explainPathErr(err))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--cert %s and --key %s are not a certificate and its key: %s", certFile, keyFile, strings.TrimPrefix(err.Error(), "tls: "))
	}
	return pair, nil
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

// notTLS is the advice when a server drops the connection mid-handshake.
const notTLS = "does it speak TLS on this port? (drop --tls if not)"

// tlsClientHandshake completes the client side of a TLS handshake,
// within ctx's deadline (connect's --connect-timeout) or, without one,
// tlsHandshakeTimeout. done, if not nil, gets the session's state once
// the handshake succeeded.
func tlsClientHandshake(cfg *tls.Config, done func(tls.ConnectionState)) func(context.Context, net.Conn) (net.Conn, error) {
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
			var he x509.HostnameError
			switch {
			case errors.As(err, &rhe), fb.plainText():
				return nil, errors.New("TLS handshake failed: the server answered in plain text; it does not speak TLS (drop --tls)")
			case errors.Is(err, context.DeadlineExceeded):
				return nil, fmt.Errorf("TLS handshake timed out after %v: the server sent no TLS answer; is it a plain-TCP server waiting for the client to speak first? (drop --tls)", time.Since(start).Round(100*time.Millisecond))
			case errors.As(err, &he):
				return nil, fmt.Errorf("TLS handshake failed: the server's %s; connect by a name it holds, or give one with --sni", strings.TrimPrefix(he.Error(), "x509: "))
			case errors.As(err, &cve):
				return nil, fmt.Errorf("TLS handshake failed: %w; trust the server's certificate with --ca FILE, or skip the check with --insecure", err)
			case tlsAlert(err) != "":
				return nil, fmt.Errorf("TLS handshake failed: %s", tlsAlert(err))
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return nil, fmt.Errorf("TLS handshake failed: the server closed the connection during the TLS handshake; %s", notTLS)
			case errors.Is(err, syscall.ECONNRESET):
				return nil, fmt.Errorf("TLS handshake failed: the server reset the connection during the TLS handshake (ECONNRESET); %s", notTLS)
			}
			return nil, fmt.Errorf("TLS handshake failed: %w", err)
		}
		if done != nil {
			done(tc.ConnectionState())
		}
		return tc, nil
	}
}

// tlsAlert says what a TLS alert from the server means for the client,
// or "" if err is not one. With TLS 1.3 the server checks a client's
// certificate after the client's side of the handshake is done, so its
// refusal comes as the first read's error, not the handshake's.
func tlsAlert(err error) string {
	const remote = "remote error: tls: "
	msg := err.Error()
	i := strings.Index(msg, remote)
	if i < 0 {
		return ""
	}
	switch alert := msg[i+len(remote):]; alert {
	case "certificate required":
		return "the server requires a client certificate: give one with --cert and --key (" + remote + alert + ")"
	case "bad certificate", "unknown certificate authority", "certificate unknown", "unsupported certificate", "certificate expired", "certificate revoked", "access denied":
		return "the server refused our client certificate (" + remote + alert + ")"
	case "no application protocol":
		return "the server speaks none of the protocols offered with --alpn (" + remote + alert + ")"
	case "unrecognized name":
		return "the server does not know the name sent (--sni) (" + remote + alert + ")"
	default:
		return "the server ended the TLS session (" + remote + alert + ")"
	}
}

// alpnLine says which protocol the server picked from those offered.
func alpnLine(cfg *tls.Config, st tls.ConnectionState) string {
	if st.NegotiatedProtocol == "" {
		return "ALPN: the server picked none of " + strings.Join(cfg.NextProtos, ",")
	}
	return fmt.Sprintf("ALPN: the server picked %q", st.NegotiatedProtocol)
}

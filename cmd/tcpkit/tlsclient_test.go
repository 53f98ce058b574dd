package main

// Tests of connect's TLS client flags (issue 17): --sni, --cert/--key
// against serve --client-ca, --alpn against openssl s_server. Helpers
// here are prefixed "tc".

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcCert runs tcpkit cert into a new directory with args and returns the
// certificate and key files.
func tcCert(t *testing.T, args ...string) (cert, key string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if code, _, errOut := runTcpkit(t, append([]string{"cert", "--out", dir}, args...)...); code != exitOK {
		t.Fatalf("tcpkit cert: exit %d, %q", code, errOut)
	}
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

// A client certificate from tcpkit cert gets through serve --client-ca;
// no certificate, or one --client-ca does not trust, is refused, and both
// sides say why. --sni is the name the server's certificate is checked
// against.
func TestTLSClientCertCLI(t *testing.T) {
	t.Parallel()
	srvCert, srvKey := tcCert(t, "--host", "example.test")
	cliCert, cliKey := tcCert(t)
	otherCert, otherKey := tcCert(t)
	srv, port := serve(t, "--tls-cert", srvCert, "--tls-key", srvKey, "--client-ca", cliCert)
	tlsArgs := []string{"connect", "--tls", "--ca", srvCert, "--count", "1"}

	t.Run("with a client certificate", func(t *testing.T) {
		code, out, errOut := runTcpkit(t, append(tlsArgs, "--cert", cliCert, "--key", cliKey, addr(port))...)
		checkExit(t, "connect --cert --key", code, exitOK)
		checkLines(t, "its stdout", out, soSeedLines)
		checkLines(t, "its stderr", errOut, nil)
		checkClientAddr(t, srv.stdout.waitPrefix(t, "connect address : ", waitFor), "127.0.0.1", port)
		srv.waitLine(t, "testing~", waitFor)
	})

	// TLS 1.3: the server checks the client's certificate after the
	// client's side of the handshake is done, so the refusal is the first
	// read's error: the connection broke, exit 3.
	t.Run("without one", func(t *testing.T) {
		code, out, errOut := runTcpkit(t, append(tlsArgs, addr(port))...)
		checkExit(t, "connect without --cert", code, exitBroken)
		checkLines(t, "its stdout", out, []string{"connect to server!"})
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: the server requires a client certificate: give one with --cert and --key (remote error: tls: certificate required)"})
		soRejected(t, srv, port, "TLS handshake failed: the client sent no certificate, and --client-ca requires one")
	})

	t.Run("with one --client-ca does not trust", func(t *testing.T) {
		code, out, errOut := runTcpkit(t, append(tlsArgs, "--cert", otherCert, "--key", otherKey, addr(port))...)
		checkExit(t, "connect --cert (untrusted)", code, exitBroken)
		checkLines(t, "its stdout", out, []string{"connect to server!"})
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: the server refused our client certificate (remote error: tls: unknown certificate authority)"})
		line := srv.stdout.waitPrefix(t, "rejected : ", waitFor)
		if !strings.Contains(line, " : TLS handshake failed: the client's certificate is not one --client-ca trusts: tls: failed to verify certificate: x509: certificate signed by unknown authority") {
			t.Errorf("serve printed %q, want the untrusted certificate named", line)
		}
	})

	t.Run("TLS 1.2", func(t *testing.T) { // the refusal comes in the handshake
		roots := tcPool(t, srvCert).RootCAs
		pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			certs []tls.Certificate
			ok    bool
		}{{"with", []tls.Certificate{pair}, true}, {"without", nil, false}} {
			nc, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr(port),
				&tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12, Certificates: tc.certs})
			if tc.ok != (err == nil) {
				t.Fatalf("TLS 1.2 %s a client certificate: %v", tc.name, err)
			}
			if err != nil {
				soRejected(t, srv, port, "TLS handshake failed: the client sent no certificate, and --client-ca requires one")
				continue
			}
			nc.SetDeadline(time.Now().Add(waitFor))
			io.WriteString(nc, "testing~")
			if got, err := io.ReadAll(nc); string(got) != "test" || err != nil {
				t.Errorf("TLS 1.2 with a client certificate: read %q, %v; want \"test\"", got, err)
			}
			nc.Close()
			srv.waitLine(t, "testing~", waitFor)
		}
	})

	t.Run("--sni", func(t *testing.T) {
		withCert := append(tlsArgs, "--cert", cliCert, "--key", cliKey)
		code, out, errOut := runTcpkit(t, append(withCert, "--sni", "example.test", addr(port))...)
		checkExit(t, "connect --sni example.test", code, exitOK)
		checkLines(t, "its stdout", out, soSeedLines)
		checkLines(t, "its stderr", errOut, nil)
		srv.waitLine(t, "testing~", waitFor)

		code, out, errOut = runTcpkit(t, append(withCert, "--sni", "wrong.test", addr(port))...)
		checkExit(t, "connect --sni wrong.test", code, exitFail)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: cannot connect to " + addr(port) +
			": TLS handshake failed: the server's certificate is valid for localhost, example.test, not wrong.test; connect by a name it holds, or give one with --sni"})
		srv.stdout.waitPrefix(t, "rejected : ", waitFor) // our side's alert
	})
	stop(t, srv)
}

// tcPool returns a client configuration that trusts the certificates in
// file, made as connect --tls --ca makes it.
func tcPool(t *testing.T, file string) *tls.Config {
	t.Helper()
	cfg, err := (&tlsClientFlags{on: true, ca: file}).config("localhost:1")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The name --sni gives is the one the server receives in the hello; by
// default it is the host connected to, and none for an IP address (TLS
// sends no IP in SNI). A Go TLS server tells the client what it got.
func TestTLSClientSNICLI(t *testing.T) {
	t.Parallel()
	cert, key := tcCert(t)
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	port := listener(t, func(c net.Conn) {
		var name string
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{pair}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name = h.ServerName
			return nil, nil
		}})
		tc.SetDeadline(time.Now().Add(waitFor))
		if tc.Handshake() != nil {
			return
		}
		io.WriteString(tc, "sni="+strconv.Quote(name))
		tc.Close()
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sni", "example.test", addr(port)}, `sni="example.test"`},
		{[]string{"localhost:" + itoa(port)}, `sni="localhost"`},
		{[]string{addr(port)}, `sni=""`},
	} {
		code, out, errOut := runTcpkit(t, append([]string{"connect", "--tls", "--insecure", "--send", "x", "--expect", tc.want}, tc.args...)...)
		checkExit(t, "connect "+strings.Join(tc.args, " "), code, exitOK)
		checkLines(t, "its stderr", errOut, nil)
		if len(out) != 1 || !strings.HasPrefix(out[0], "ok: "+strconv.Quote(tc.want)+" matched ") {
			t.Errorf("connect %q: stdout %q, want the server to have seen %s", tc.args, out, tc.want)
		}
	}
}

// --alpn offers protocols; the one openssl s_server picks is printed on
// stderr, and none in common fails the handshake with a line that says
// so. tcpkit serve offers none: connect says the server picked none.
func TestTLSClientALPNCLI(t *testing.T) {
	t.Parallel()
	openssl := needPeer(t, "openssl")
	cert, key := tcCert(t)
	ossl := start(t, openssl, "s_server", "-accept", "127.0.0.1:0", "-cert", cert, "-key", key, "-alpn", "h2,http/1.1", "-rev")
	m := ossl.stdout.waitMatch(t, "ACCEPT 127.0.0.1:PORT", func(l string) bool { return strings.HasPrefix(l, "ACCEPT 127.0.0.1:") }, waitFor)
	port, err := strconv.Atoi(strings.TrimPrefix(m, "ACCEPT 127.0.0.1:"))
	if err != nil {
		t.Fatalf("openssl s_server printed %q", m)
	}
	check := []string{"connect", "--tls", "--ca", cert, "--send", `hello\n`, "--expect", "olleh"} // -rev: each line reversed

	for _, tc := range []struct{ alpn, picked string }{{"h2", `"h2"`}, {"spdy/1,http/1.1", `"http/1.1"`}} {
		code, out, errOut := runTcpkit(t, append(check, "--alpn", tc.alpn, addr(port))...)
		checkExit(t, "connect --alpn "+tc.alpn, code, exitOK)
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: ALPN: the server picked " + tc.picked})
		if len(out) != 1 || !strings.HasPrefix(out[0], `ok: "olleh\n" matched "olleh" after `) {
			t.Errorf("its stdout: %q, want the reversed line", out)
		}
	}
	code, out, errOut := runTcpkit(t, append(check, "--alpn", "foo,bar", addr(port))...)
	checkExit(t, "connect --alpn foo,bar", code, exitFail)
	checkLines(t, "its stdout", out, nil)
	checkLines(t, "its stderr", errOut, []string{"tcpkit connect: check failed: cannot connect to " + addr(port) +
		": TLS handshake failed: the server speaks none of the protocols offered with --alpn (remote error: tls: no application protocol)"})

	srvCert, srvKey := tcCert(t)
	srv, sport := serve(t, "--tls-cert", srvCert, "--tls-key", srvKey)
	code, out, errOut = runTcpkit(t, "connect", "--tls", "--ca", srvCert, "--alpn", "h2", "--count", "1", addr(sport))
	checkExit(t, "connect --alpn h2 to tcpkit serve", code, exitOK)
	checkLines(t, "its stdout", out, soSeedLines)
	checkLines(t, "its stderr", errOut, []string{"tcpkit connect: ALPN: the server picked none of h2"})
	stop(t, srv)
}

// The TLS client's flags refuse what cannot work, before connecting.
func TestTLSClientUsageCLI(t *testing.T) {
	t.Parallel()
	cert, key := tcCert(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not PEM\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sni", "example.test", "5000"}, "--insecure, --ca, --sni, --cert, --key and --alpn go with --tls"},
		{[]string{"--alpn", "h2", "5000"}, "--insecure, --ca, --sni, --cert, --key and --alpn go with --tls"},
		{[]string{"--tls", "--cert", cert, "5000"}, "give both --cert and --key, or neither"},
		{[]string{"--tls", "--cert", missing, "--key", key, "5000"}, "--cert " + missing + ": no such file or directory (ENOENT)"},
		{[]string{"--tls", "--cert", cert, "--key", notPEM, "5000"}, "--cert " + cert + " and --key " + notPEM + " are not a certificate and its key: failed to find any PEM data in key input"},
		{[]string{"--tls", "--ca", notPEM, "5000"}, "--ca: " + notPEM + " holds no PEM certificate"},
		{[]string{"--tls", "--alpn", "h2,", "5000"}, `--alpn "h2,": give protocol names of 1 to 255 bytes, comma-separated, such as h2,http/1.1`},
		{[]string{"--tls", "--unix", "/tmp/x.sock"}, "--tls without a host name (a Unix socket) needs --sni NAME, the name to verify the server's certificate against, or --insecure"},
	} {
		code, out, errOut := runTcpkit(t, append([]string{"connect"}, tc.args...)...)
		checkExit(t, "connect "+strings.Join(tc.args, " "), code, exitUsage)
		checkLines(t, "its stdout", out, nil)
		checkLines(t, "its stderr", errOut, []string{"tcpkit connect: " + tc.want + " (run 'tcpkit connect -h' for help)"})
	}
	code, _, errOut := runTcpkit(t, "serve", "--port", "0", "--client-ca", cert)
	checkExit(t, "serve --client-ca without --tls-cert", code, exitUsage)
	checkLines(t, "its stderr", errOut, []string{"tcpkit serve: --tls-handshake-timeout and --client-ca go with --tls-cert and --tls-key (run 'tcpkit serve -h' for help)"})
	code, _, errOut = runTcpkit(t, "serve", "--port", "0", "--tls-cert", cert, "--tls-key", key, "--client-ca", notPEM)
	checkExit(t, "serve --client-ca not PEM", code, exitUsage)
	checkLines(t, "its stderr", errOut, []string{"tcpkit serve: --client-ca: " + notPEM + " holds no PEM certificate (run 'tcpkit serve -h' for help)"})

}

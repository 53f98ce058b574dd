package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const certUsage = `Usage: tcpkit cert [flags]

Write a self-signed certificate and its key, for testing TLS locally:
serve --tls-cert cert.pem --tls-key key.pem, and connect --tls --ca
cert.pem. The certificate is for localhost, 127.0.0.1 and ::1 (and
--host), valid for --days, for a server or a client (connect --cert
and --key, trusted by serve --client-ca). Not for production: use your
CA's.

The files are new ones: key.pem is made with mode 0600 and cert.pem 0644,
in --out, which is made (mode 0700) when it does not exist. If either
file exists, nothing is written unless --force, which replaces them; a
symlink in their place is replaced, never followed.

Examples:
  tcpkit cert --out tls                 tls/cert.pem and tls/key.pem
  tcpkit cert --out tls --host example.test --days 30 --force

Flags:
`

func certCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cert", certUsage, stdout)
	dir := fs.String("out", ".", "write cert.pem and key.pem into this `directory`, made if missing")
	hosts := fs.String("host", "", "more host `names` or IPs for the certificate, comma-separated")
	days := fs.Int("days", 365, "how many `days` the certificate is valid")
	force := fs.Bool("force", false, "replace cert.pem and key.pem if they exist")
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
	if err := prepareOut(*dir, *force, certFile, keyFile); err != nil {
		fmt.Fprintf(stderr, "tcpkit cert: %v\n", err)
		return exitFail
	}
	certPEM, keyPEM, err := selfSigned(names, time.Duration(*days)*24*time.Hour)
	if err == nil {
		err = writeNew(keyFile, keyPEM, 0o600, *force)
	}
	if err == nil {
		if err = writeNew(certFile, certPEM, 0o644, *force); err != nil && !*force {
			os.Remove(keyFile) // ours, made a moment ago: no half pair left behind
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "tcpkit cert: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote %s and %s for %s\n", certFile, keyFile, strings.Join(names, ", "))
	return exitOK
}

// prepareOut makes dir (0700) if it does not exist, and checks that the
// files can be written: without force, neither may exist, as anything,
// a symlink included; with force, neither may be a directory.
func prepareOut(dir string, force bool, files ...string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("cannot make --out %s: %v", dir, explainPathErr(err))
		}
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %v", dir, explainPathErr(err))
	case !fi.IsDir():
		return fmt.Errorf("--out %s is not a directory", dir)
	}
	for _, f := range files {
		fi, err := os.Lstat(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("%s: %v", f, explainPathErr(err))
		case fi.IsDir():
			return fmt.Errorf("%s is a directory: remove it or write elsewhere with --out", f)
		case !force:
			return fmt.Errorf("%s already exists: nothing written; replace it with --force, or write elsewhere with --out", f)
		}
	}
	return nil
}

// writeNew writes data to a new file at path with mode perm: a temporary
// file made in the same directory (exclusively, so no symlink is
// followed), synced, then put in place. With replace, a file or symlink
// already at path is replaced (rename); without, its appearance in the
// meantime is an error (link, which never replaces).
func writeNew(path string, data []byte, perm os.FileMode, replace bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %v", filepath.Dir(path), explainPathErr(err))
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename or link, a no-op or the extra name
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm) // exactly perm, whatever the umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %v", path, explainPathErr(err))
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s already exists: nothing written; replace it with --force, or write elsewhere with --out", path)
	case err != nil:
		return fmt.Errorf("cannot write %s: %v", path, explainPathErr(err))
	}
	return nil
}

// selfSigned makes an ECDSA P-256 certificate for names, for servers and
// clients, and its key, both PEM-encoded.
func selfSigned(names []string, valid time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"tcpkit self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(valid),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so that --ca cert.pem (or --client-ca) can verify it
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
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

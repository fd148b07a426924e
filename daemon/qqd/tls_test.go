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
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns a pool trusting it.
func selfSigned(t *testing.T, dir, cn string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

// TestTLSListener: a second listener speaks QQP over TLS 1.2+, shares the
// server with the plain one, and picks up a renewed certificate on reload
// without dropping connections.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	first := selfSigned(t, dir, "first")
	conf := writeConfig(t, dir, fmt.Sprintf("tls:\n  listen: 127.0.0.1:0\n  cert_file: %s\n  key_file: %s\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	p := startQQD(t, dir, "-config", conf)
	var tlsAddr string
	re := regexp.MustCompile(`msg="qqd starting" .*tls_listen=(\S+)`)
	deadline := time.Now().Add(daemontest.Timeout)
	for tlsAddr == "" && time.Now().Before(deadline) {
		for _, l := range p.logLines() {
			if m := re.FindStringSubmatch(l); m != nil {
				tlsAddr = m[1]
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if tlsAddr == "" {
		t.Fatal("no TLS listener in the log")
	}
	ctx := context.Background()
	dial := func(pool *x509.CertPool) (*client.Client, error) {
		c, err := client.Dial(ctx, tlsAddr, client.Options{TLS: &tls.Config{RootCAs: pool}})
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	alice, err := dial(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Register(ctx, "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Login(ctx, "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	// A plain-TCP user and a TLS user talk to each other.
	bob := dialClient(t, p.addr, "bob")
	if _, err := alice.Send(ctx, "bob", "over TLS"); err != nil {
		t.Fatal(err)
	}
	if m := <-bob.Messages(); m.Body != "over TLS" {
		t.Fatalf("bob got %q", m.Body)
	}
	// qqadmin users tells the TLS session from the TCP one.
	adm, err := admin.Dial(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	via := transports(ctx, t, adm)
	if via["alice"] != "tls" || via["bob"] != "tcp" {
		t.Fatalf("qqadmin users: transports %v, want alice tls, bob tcp", via)
	}
	// Old TLS versions are refused.
	if _, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: first, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}

	// Renew the certificate and reload: new connections get the new one,
	// the old connection stays.
	second := selfSigned(t, dir, "second")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `reloading configuration`)
	deadline = time.Now().Add(daemontest.Timeout)
	for {
		c, err := dial(second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate is not served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := alice.Send(ctx, "bob", "still here"); err != nil {
		t.Fatalf("the TLS connection did not survive the reload: %v", err)
	}
}

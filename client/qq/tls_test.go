package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTLSConfig(t *testing.T) {
	g := &globals{addr: "chat.example.org:5191", tls: true}
	tc, err := tlsConfig(g)
	if err != nil || tc.ServerName != "chat.example.org" || tc.RootCAs != nil || tc.MinVersion == 0 {
		t.Fatalf("tlsConfig = %+v, %v", tc, err)
	}
	g.serverName = "other.example.org"
	if tc, _ := tlsConfig(g); tc.ServerName != "other.example.org" {
		t.Fatalf("--server-name ignored: %q", tc.ServerName)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	g.ca = bad
	if _, err := tlsConfig(g); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad --ca: %v", err)
	}
	g.ca = filepath.Join(dir, "missing.pem")
	if _, err := tlsConfig(g); err == nil || !strings.Contains(err.Error(), "--ca") {
		t.Fatalf("missing --ca: %v", err)
	}
}

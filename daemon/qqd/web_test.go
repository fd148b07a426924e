package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/daemon/web"
)

// webURL returns the URL qqd logged for its web client.
func (p *qqdProc) webURL(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`msg="web client at (\S+)"`)
	p.waitLog(t, re.String())
	for _, l := range p.logLines() {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	panic("unreachable")
}

// webClient dials qqd's WebSocket gateway with the client library and
// logs user in (registering first).
func webClient(t *testing.T, url, user string, tlsConfig *tls.Config) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	ws := strings.Replace(strings.Replace(url, "https://", "wss://", 1), "http://", "ws://", 1) + strings.TrimPrefix(web.WSPath, "/")
	c, err := client.Dial(ctx, "", client.Options{Dial: func(ctx context.Context, _ string) (net.Conn, error) {
		return web.Dial(ctx, ws, web.DialOptions{TLS: tlsConfig})
	}})
	if err != nil {
		t.Fatalf("dial %s: %v", ws, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Register(ctx, user, user+"-password"); err != nil && !errors.Is(err, &protocol.Error{Code: protocol.CodeUserExists}) {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, user, user+"-password"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWebClient runs the real qqd with its web listener: the URL it logs
// serves the page with its CSP; a client over the WebSocket chats with
// one over TCP; qqadmin sees the session as "ws" and kicks it; SIGTERM
// kicks the others with shutdown.
func TestWebClient(t *testing.T) {
	dir := t.TempDir()
	p := startQQD(t, dir)
	url := p.webURL(t)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/") {
		t.Fatalf("web client URL %q", url)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET %s: %s, Content-Type %q, CSP %q", url, resp.Status, resp.Header.Get("Content-Type"),
			resp.Header.Get("Content-Security-Policy"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	alice := webClient(t, url, "alice", nil)
	bob := dialClient(t, p.addr, "bob")
	if _, err := alice.Send(ctx, "bob", "from the browser side"); err != nil {
		t.Fatal(err)
	}
	if m := <-bob.Messages(); m.Body != "from the browser side" || m.From != "alice" {
		t.Fatalf("bob got %+v", m)
	}
	if _, err := bob.Send(ctx, "alice", "from the terminal"); err != nil {
		t.Fatal(err)
	}
	if m := <-alice.Messages(); m.Body != "from the terminal" {
		t.Fatalf("alice got %+v", m)
	}

	adm, err := admin.Dial(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	via := transports(ctx, t, adm)
	if via["alice"] != "ws" || via["bob"] != "tcp" {
		t.Fatalf("qqadmin users: transports %v, want alice ws, bob tcp", via)
	}
	if n, err := adm.Kick(ctx, "alice", "enough"); err != nil || n != 1 {
		t.Fatalf("kick alice: %d, %v", n, err)
	}
	<-alice.Done()
	var kicked *client.KickedError
	if !errors.As(alice.Err(), &kicked) || kicked.Reason != protocol.KickAdmin {
		t.Fatalf("alice ended with %v, want kicked admin", alice.Err())
	}

	carol := webClient(t, url, "carol", nil)
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("qqd exit after SIGTERM: %v", err)
	}
	<-carol.Done()
	if !errors.As(carol.Err(), &kicked) || kicked.Reason != protocol.KickShutdown {
		t.Fatalf("carol ended with %v, want kicked shutdown", carol.Err())
	}
}

// TestWebTLS: with web.tls the page and the WebSocket are served over TLS
// with tls.cert_file and tls.key_file, and reported as "wss".
func TestWebTLS(t *testing.T) {
	dir := t.TempDir()
	pool := selfSigned(t, dir, "web")
	conf := writeConfig(t, dir, fmt.Sprintf("web:\n  tls: true\ntls:\n  cert_file: %s\n  key_file: %s\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	p := startQQD(t, dir, "-config", conf)
	url := p.webURL(t)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("web client URL %q, want https://127.0.0.1:...", url)
	}
	hc := &http.Client{Timeout: daemontest.Timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.ProtoMajor != 1 {
		t.Fatalf("GET %s: %s over %s", url, resp.Status, resp.Proto)
	}
	alice := webClient(t, url, "alice", &tls.Config{RootCAs: pool})
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	if err := alice.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	adm, err := admin.Dial(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	users, err := adm.Users(ctx)
	if err != nil || len(users) != 1 || users[0].Sessions[0].Transport != "wss" {
		t.Fatalf("qqadmin users: %+v, %v; want alice over wss", users, err)
	}
	// A plain WebSocket to the TLS listener fails.
	plain := "ws://" + strings.TrimSuffix(strings.TrimPrefix(url, "https://"), "/") + web.WSPath
	if _, err := web.Dial(ctx, plain, web.DialOptions{}); err == nil {
		t.Fatal("a plain WebSocket to the TLS listener succeeded")
	}
}

// TestWebOff: -web-listen "" (web.listen: "") runs qqd without the web
// listener.
func TestWebOff(t *testing.T) {
	p := startQQD(t, t.TempDir(), "-web-listen", "")
	p.waitLog(t, `msg="qqd starting"`)
	if p.logged(`web client at|web_listen=`) {
		t.Fatalf("a web listener with -web-listen \"\":\n%s", strings.Join(p.logLines(), "\n"))
	}
}

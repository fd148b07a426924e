package web_test

import (
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/web"
)

// checkSecurityHeaders checks the headers every response carries.
func checkSecurityHeaders(t *testing.T, what string, h http.Header, host string) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"connect-src 'self' ws://" + host + " wss://" + host + ";",
		"object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", what, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("%s: Content-Security-Policy %q allows something unsafe", what, csp)
	}
	for k, v := range map[string]string{
		"X-Content-Type-Options":       "nosniff",
		"Referrer-Policy":              "no-referrer",
		"X-Frame-Options":              "DENY",
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Resource-Policy": "same-origin",
	} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

// TestWebFiles: the app's files with their types, the security headers on
// every response, ETag revalidation, HEAD, 404 and 405.
func TestWebFiles(t *testing.T) {
	files := fstest.MapFS{
		"index.html":   {Data: []byte("<!doctype html><title>qq</title><script type=module src=app.js></script>")},
		"app.js":       {Data: []byte("export const x = 1;\n")},
		"style.css":    {Data: []byte("body{}")},
		"icon.svg":     {Data: []byte("<svg/>")},
		"lib/chat.mjs": {Data: []byte("export {};")},
		"blob.bin":     {Data: []byte{0, 1, 2}},
	}
	reg := prometheus.NewPedanticRegistry()
	l := listen(t, config.Default().Web, web.Deps{Files: files, Registry: reg})
	host := l.Addr().String()
	base := "http://" + host

	for path, want := range map[string]struct{ ctype, body string }{
		"/":             {"text/html; charset=utf-8", string(files["index.html"].Data)},
		"/index.html":   {"text/html; charset=utf-8", string(files["index.html"].Data)},
		"/app.js":       {"text/javascript; charset=utf-8", string(files["app.js"].Data)},
		"/style.css":    {"text/css; charset=utf-8", "body{}"},
		"/icon.svg":     {"image/svg+xml", "<svg/>"},
		"/lib/chat.mjs": {"text/javascript; charset=utf-8", "export {};"},
		"/blob.bin":     {"application/octet-stream", "\x00\x01\x02"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusOK || body != want.body {
			t.Errorf("GET %s: %s %q, want 200 %q", path, resp.Status, body, want.body)
		}
		if got := resp.Header.Get("Content-Type"); got != want.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want.ctype)
		}
		if resp.Header.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(resp.Header.Get("ETag"), `"`) {
			t.Errorf("GET %s: Cache-Control %q, ETag %q; want no-cache and a strong ETag", path,
				resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
		}
		checkSecurityHeaders(t, "GET "+path, resp.Header, host)

		// Revalidation: the same ETag is not modified.
		req, _ = http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("If-None-Match", `"other", W/`+resp.Header.Get("ETag"))
		resp2, body2 := do(t, req)
		if resp2.StatusCode != http.StatusNotModified || body2 != "" {
			t.Errorf("GET %s with its ETag: %s %q, want 304 and no body", path, resp2.Status, body2)
		}
		checkSecurityHeaders(t, "304 "+path, resp2.Header, host)
	}
	// Another file's ETag is not this one's.
	req, _ := http.NewRequest(http.MethodGet, base+"/app.js", nil)
	req.Header.Set("If-None-Match", `"nope"`)
	if resp, _ := do(t, req); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /app.js with another ETag: %s, want 200", resp.Status)
	}

	req, _ = http.NewRequest(http.MethodHead, base+"/app.js", nil)
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != int64(len(files["app.js"].Data)) {
		t.Errorf("HEAD /app.js: %s, %d bytes, Content-Length %d", resp.Status, len(body), resp.ContentLength)
	}
	for _, path := range []string{"/nope.js", "/lib/", "/lib", "/../index.html", "/.hidden"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		resp, _ := do(t, req)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
		checkSecurityHeaders(t, "404 "+path, resp.Header, host)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/", strings.NewReader("x=1"))
	resp, _ = do(t, req)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %s, Allow %q; want 405 with Allow: GET, HEAD", resp.Status, resp.Header.Get("Allow"))
	}
	checkSecurityHeaders(t, "405", resp.Header, host)
	// /ws without an upgrade: the library's refusal, with the headers.
	req, _ = http.NewRequest(http.MethodGet, base+web.WSPath, nil)
	resp, _ = do(t, req)
	if resp.StatusCode/100 != 4 {
		t.Errorf("GET /ws without upgrade: %s, want a 4xx", resp.Status)
	}
	checkSecurityHeaders(t, "GET /ws", resp.Header, host)

	if got := daemontest.MetricValue(t, reg, "qqd_web_http_requests_total", "result", "not_modified"); got != 7 {
		t.Errorf("not_modified requests = %v, want 7", got)
	}
	if got := daemontest.MetricValue(t, reg, "qqd_web_upgrades_total", "result", "bad_request"); got != 1 {
		t.Errorf("bad_request upgrades = %v, want 1", got)
	}
}

// TestWebEmbeddedApp: the embedded app is served from "/", every file of
// it with a type the browser will use (none as application/octet-stream),
// with the security headers.
func TestWebEmbeddedApp(t *testing.T) {
	l := listen(t, config.Default().Web, web.Deps{})
	host := l.Addr().String()
	var paths []string
	fs.WalkDir(web.App(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, "/"+p)
		}
		return err
	})
	if len(paths) == 0 {
		t.Fatal("the embedded app has no files")
	}
	for _, p := range append([]string{"/"}, paths...) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+p, nil)
		resp, _ := do(t, req)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
		if ct := resp.Header.Get("Content-Type"); ct == "application/octet-stream" || ct == "" {
			t.Errorf("GET %s: Content-Type %q: add its extension to contentTypes", p, ct)
		}
		checkSecurityHeaders(t, "GET "+p, resp.Header, host)
	}
}

// TestWebURL: the URL to print for a listener.
func TestWebURL(t *testing.T) {
	l := listen(t, config.Default().Web, web.Deps{})
	if got, want := l.URL(), "http://"+l.Addr().String()+"/"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
}

// TestWebMetricsLint: the listener's metrics lint clean and use only the
// closed label sets.
func TestWebMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	listen(t, config.Default().Web, web.Deps{Registry: reg})
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 4 {
		t.Errorf("%d metric families, want at least 4", len(mfs))
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "qqd_web_") {
			t.Errorf("metric %s lacks the qqd_web_ prefix", mf.GetName())
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "result", "reason":
				default:
					t.Errorf("metric %s has label %s outside the closed sets", mf.GetName(), lp.GetName())
				}
			}
		}
	}
	// A second listener cannot register on the same registry.
	if _, err := web.Listen(config.Web{Listen: "127.0.0.1:0", MaxHTTPConnections: 1, MaxHTTPConnectionsPerIP: 1, HandshakeTimeout: 1},
		web.Deps{Registry: reg}); err == nil {
		t.Error("a second listener registered its metrics on the same registry")
	}
}

package web

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// file is one file of the app, read once at start.
type file struct {
	data  []byte
	ctype string
	etag  string // strong: a hash of data, quoted
}

// contentTypes maps the extensions a web app uses to their types. Files
// with another extension are served as application/octet-stream (with
// nosniff, a browser will not run or style with them). The system's MIME
// tables are not consulted, so that a file is served alike everywhere.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".webp":        "image/webp",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
	".map":         "application/json",
}

// loadFiles reads every file of fsys, keyed by its URL path ("/app.js"),
// with "/" for index.html.
func loadFiles(fsys fs.FS) (map[string]*file, error) {
	files := make(map[string]*file)
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[strings.ToLower(path.Ext(name))]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(data)
		f := &file{data: data, ctype: ctype, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
		files["/"+name] = f
		if name == "index.html" {
			files["/"] = f
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: app files: %w", err)
	}
	return files, nil
}

// serveFile answers a GET or HEAD for a file of the app.
func (l *Listener) serveFile(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	f, ok := l.files[r.URL.Path]
	if !ok {
		l.m.requests[requestNotFound].Inc()
		h.Set("Cache-Control", "no-store")
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, f.etag) {
		l.m.requests[requestNotModified].Inc()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	l.m.requests[requestOK].Inc()
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(f.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(f.data)
	}
}

// etagMatches reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" || strings.TrimPrefix(p, "W/") == etag {
			return true
		}
	}
	return false
}

// cspHead and cspTail are the Content-Security-Policy of every response
// around the hosts connect-src names (see csp).
const (
	cspHead = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
	cspTail = "; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)

// plainHost is a Host header safe to put into a header value: a name or
// an IP address (IPv6 in brackets), with an optional port.
var plainHost = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// csp returns the Content-Security-Policy for a request to host. CSP
// level 3 lets 'self' cover ws: and wss: to the page's own host, but not
// every browser does (Safari long did not), so the page's host is named
// for ws: and wss: as well; never any other host.
func csp(host string) string {
	if !plainHost.MatchString(host) {
		return cspHead + cspTail
	}
	return cspHead + " ws://" + host + " wss://" + host + cspTail
}

// setSecurityHeaders sets the headers every response of the listener
// carries (see the package documentation).
func setSecurityHeaders(h http.Header, host string) {
	h.Set("Content-Security-Policy", csp(host))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

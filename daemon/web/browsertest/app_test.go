package browsertest

import (
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/web"
	"golang.org/x/net/html"
)

// TestAppFiles checks the app's files without a browser: every file a
// page or module refers to is in the binary, nothing comes from another
// site (no CDN), and nothing needs what a strict Content-Security-Policy
// forbids (inline scripts and styles, event-handler attributes, eval) or
// renders text as HTML.
func TestAppFiles(t *testing.T) {
	app := web.App()
	exists := func(p string) bool {
		_, err := fs.Stat(app, strings.TrimPrefix(p, "/"))
		return err == nil
	}
	var htmls, scripts, styles int
	err := fs.WalkDir(app, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(app, name)
		if err != nil {
			return err
		}
		switch path.Ext(name) {
		case ".html":
			htmls++
			checkHTML(t, name, string(b), exists)
		case ".js":
			scripts++
			checkJS(t, name, string(b), exists)
		case ".css":
			styles++
			checkCSS(t, name, string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if htmls == 0 || scripts == 0 || styles == 0 {
		t.Errorf("the app has %d HTML, %d JavaScript and %d CSS files; want some of each", htmls, scripts, styles)
	}
}

// ref resolves a reference from file name, failing for another origin.
func ref(t *testing.T, name, r string, exists func(string) bool) {
	t.Helper()
	u, err := url.Parse(r)
	if err != nil {
		t.Errorf("%s: bad reference %q: %v", name, r, err)
		return
	}
	if u.Scheme == "data" {
		return
	}
	if u.Scheme != "" || u.Host != "" {
		t.Errorf("%s: %q is on another site; the app serves everything itself", name, r)
		return
	}
	p := u.Path
	if !strings.HasPrefix(p, "/") {
		p = path.Join(path.Dir("/"+name), p)
	}
	if p == "" || !exists(p) {
		t.Errorf("%s: refers to %q, which the app does not have", name, r)
	}
}

func checkHTML(t *testing.T, name, src string, exists func(string) bool) {
	z := html.NewTokenizer(strings.NewReader(src))
	inScript := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return
		case html.TextToken:
			if inScript && strings.TrimSpace(string(z.Text())) != "" {
				t.Errorf("%s: an inline script", name)
			}
		case html.EndTagToken:
			if tn, _ := z.TagName(); string(tn) == "script" {
				inScript = false
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			tn, hasAttr := z.TagName()
			tag := string(tn)
			attrs := map[string]string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				attrs[string(k)] = string(v)
			}
			for k := range attrs {
				if strings.HasPrefix(k, "on") || k == "style" {
					t.Errorf("%s: <%s %s=...>: a strict CSP blocks it", name, tag, k)
				}
			}
			switch tag {
			case "style":
				t.Errorf("%s: a <style> element: a strict CSP blocks it", name)
			case "script":
				inScript = tt == html.StartTagToken
				if attrs["src"] == "" {
					t.Errorf("%s: a <script> without src", name)
				} else {
					ref(t, name, attrs["src"], exists)
				}
			case "link", "img":
				for _, k := range []string{"href", "src"} {
					if v, ok := attrs[k]; ok {
						ref(t, name, v, exists)
					}
				}
			case "a":
				if strings.HasPrefix(strings.ToLower(attrs["href"]), "javascript:") {
					t.Errorf("%s: a javascript: link", name)
				}
			}
		}
	}
}

var (
	importRE = regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"\n]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]`)
	// What renders text as HTML, or evaluates strings as code, or sets
	// inline styles: never used by the app.
	forbiddenJS = regexp.MustCompile(`\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\b|setAttribute\(\s*['"](style|on\w+)['"]|\.cssText\b|createContextualFragment|DOMParser`)
)

func checkJS(t *testing.T, name, src string, exists func(string) bool) {
	for _, m := range importRE.FindAllStringSubmatch(src, -1) {
		spec := m[1] + m[2] + m[3]
		if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") && !strings.HasPrefix(spec, "/") {
			t.Errorf("%s: imports %q: only the app's own modules", name, spec)
			continue
		}
		ref(t, name, spec, exists)
	}
	for _, m := range forbiddenJS.FindAllString(src, -1) {
		t.Errorf("%s: uses %s", name, m)
	}
}

func checkCSS(t *testing.T, name, src string) {
	if strings.Contains(src, "@import") {
		t.Errorf("%s: @import", name)
	}
	for _, m := range regexp.MustCompile(`url\(\s*['"]?([^'")]+)`).FindAllStringSubmatch(src, -1) {
		if !strings.HasPrefix(m[1], "data:") {
			t.Errorf("%s: url(%s): images are files or data: URLs of the app", name, m[1])
		}
	}
}

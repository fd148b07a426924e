// Tests that keep the project's structure honest: every package documents
// itself, the wire package stays standard-library only, and dependencies
// point one way (the daemon's packages never import admin or client, and
// admin never imports the daemon or the plugins; only the qqd binary,
// daemon/qqd, wires them together).
package qq_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Doc        string
	Name       string
	Standard   bool
	Deps       []string
	GoFiles    []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []goPackage
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/qqchat/qq"

func TestPackagesHaveDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) > 0 && strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}

// TestDependencyDirection checks every package's dependencies, direct or
// not, against the rules of forbidden.
func TestDependencyDirection(t *testing.T) {
	pkgs := listPackages(t)
	for _, p := range pkgs {
		for _, d := range p.Deps {
			if why := forbidden(p, d); why != "" {
				t.Errorf("%s depends on %s: %s", p.ImportPath, d, why)
			}
		}
	}
	// The rules name these packages; if one moves, they check nothing.
	for _, want := range []string{"/daemon", "/daemon/protocol", "/daemon/limit", "/daemon/route", "/admin", "/admin/qqadmin", "/plugins", "/plugins/pluginset"} {
		if !slices.ContainsFunc(pkgs, func(p goPackage) bool { return p.ImportPath == module+want }) {
			t.Errorf("no package %s: update the rules of forbidden", module+want)
		}
	}
}

// serverSideDeps are what the server side links (plugins over gRPC,
// configuration, password hashing, metrics) and qqadmin, a thin client of
// the admin socket, must not.
var serverSideDeps = []string{
	"google.golang.org/grpc",
	"github.com/hashicorp/go-plugin",
	"github.com/knadh/koanf",
	"golang.org/x/crypto/argon2",
	"github.com/prometheus",
}

// forbidden says why package p must not depend on d, or "" if it may.
func forbidden(p goPackage, d string) string {
	path := p.ImportPath
	switch {
	case path == module+"/daemon/protocol" && !standard(d):
		return "the wire package must import only the standard library"
	case (path == module+"/daemon/limit" || path == module+"/daemon/route") && !standard(d):
		return "the limits and the router's interface are leaf packages of the standard library only"
	case under(path, module+"/daemon") && p.Name != "main" && (under(d, module+"/admin") || under(d, module+"/client")):
		return "daemon must not depend on admin or client"
	case under(path, module+"/admin") && (under(d, module+"/daemon") || under(d, module+"/plugins")):
		return "admin owns its wire types and errors; qqd (daemon/qqd) adapts the daemon and plugins to them"
	case path == module+"/admin/qqadmin" && slices.ContainsFunc(serverSideDeps, func(s string) bool { return under(d, s) }):
		return "qqadmin is a thin client of the admin socket and must not link the server side"
	// daemon/protocol is the wire package, standard library only: plugins
	// may use its message types. The daemon itself, and its other
	// packages, they may not.
	case under(path, module+"/plugins") && under(d, module+"/daemon") && d != module+"/daemon/protocol":
		return "plugins must not depend on the daemon (daemon/protocol, the wire package, they may)"
	}
	return ""
}

// under reports whether path is the package prefix or one below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// standard reports whether an import path is of the standard library: its
// first element has no dot.
func standard(path string) bool {
	return !strings.Contains(strings.SplitN(path, "/", 2)[0], ".")
}

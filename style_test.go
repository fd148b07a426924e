// Tests that keep the project's structure honest: every package documents
// itself, the wire package stays standard-library only, and dependencies
// point one way (the daemon's packages never import admin or client; only
// the qqd binary, daemon/qqd, wires them together).
package qq_test

import (
	"encoding/json"
	"io"
	"os/exec"
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

func TestDependencyDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, d := range p.Deps {
			switch {
			case p.ImportPath == module+"/daemon/protocol" && strings.Contains(strings.SplitN(d, "/", 2)[0], "."):
				t.Errorf("%s must import only the standard library; imports %s", p.ImportPath, d)
			case strings.HasPrefix(p.ImportPath, module+"/daemon") && p.Name != "main" &&
				(strings.HasPrefix(d, module+"/admin") || strings.HasPrefix(d, module+"/client")):
				t.Errorf("%s imports %s: daemon must not depend on admin or client", p.ImportPath, d)
			}
		}
	}
}

// Command vulndb builds an offline Go vulnerability database for
// `govulncheck -db file:///DIR` from a version of the golang.org/x/vulndb
// module, which carries every report as an OSV JSON file in data/osv/.
// CI has no network but the Go module proxy, so it cannot read
// vuln.go.dev; this takes the same data through the proxy instead.
//
// Usage:
//
//	go run ./.ci/vulndb -module golang.org/x/vulndb@VERSION -out DIR
//
// It downloads the module with `go mod download -json` (the module
// cache keeps it) and writes DIR in the v1 layout of
// https://go.dev/security/vuln/database#api, uncompressed, which is what
// govulncheck reads from a file:// database:
//
//	index/db.json       {"modified": T}
//	index/modules.json  [{"path": M, "vulns": [{"id", "modified"}]}], by path, then ID
//	index/vulns.json    [{"id", "modified", "aliases"}], by ID
//	ID/<id>.json        the OSV entry, byte for byte
//
// The repository's OSV files all say "modified": "0001-01-01T00:00:00Z"
// (the real time is stamped when vuln.go.dev is deployed), so T, the
// database's time that govulncheck prints, is the module version's commit
// time. The index leaves out the optional "fixed" version: govulncheck
// then reads each of a module's entries and matches the version against
// its ranges, which gives the same answer.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// entry is the part of an OSV entry that the indexes need.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type dbMeta struct {
	Modified time.Time `json:"modified"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

func main() {
	mod := flag.String("module", "", "the vulndb module and version, golang.org/x/vulndb@VERSION")
	out := flag.String("out", "", "directory to write the database to (created; must not hold one already)")
	flag.Parse()
	if *mod == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: vulndb -module golang.org/x/vulndb@VERSION -out DIR")
		os.Exit(2)
	}
	n, modified, err := build(*mod, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulndb: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("vulndb: %d entries from %s (modified %s) in %s\n", n, *mod, modified.Format(time.RFC3339), *out)
}

// build writes the database for mod into out and returns its number of
// entries and its modification time.
func build(mod, out string) (int, time.Time, error) {
	osvDir, modified, err := download(mod)
	if err != nil {
		return 0, time.Time{}, err
	}
	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(files) == 0 {
		return 0, time.Time{}, fmt.Errorf("read %s: no OSV files", osvDir)
	}
	if err := os.Mkdir(out, 0o755); err != nil && !os.IsExist(err) {
		return 0, time.Time{}, err
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.Mkdir(filepath.Join(out, d), 0o755); err != nil {
			return 0, time.Time{}, err
		}
	}

	modules := map[string]*module{}
	var vulns []vuln
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, time.Time{}, err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return 0, time.Time{}, fmt.Errorf("decode %s: %w", f, err)
		}
		if e.ID+".json" != filepath.Base(f) {
			return 0, time.Time{}, fmt.Errorf("decode %s: entry has id %q", f, e.ID)
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return 0, time.Time{}, err
		}
		vulns = append(vulns, vuln{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &module{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			// An entry can name a module twice (two ranges of packages).
			if !slices.ContainsFunc(m.Vulns, func(v moduleVuln) bool { return v.ID == e.ID }) {
				m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
			}
		}
	}

	index := make([]*module, 0, len(modules))
	for _, m := range modules {
		slices.SortFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		index = append(index, m)
	}
	slices.SortFunc(index, func(a, b *module) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(vulns, func(a, b vuln) int { return strings.Compare(a.ID, b.ID) })

	for name, v := range map[string]any{
		"db.json":      dbMeta{Modified: modified},
		"modules.json": index,
		"vulns.json":   vulns,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, time.Time{}, err
		}
		if err := os.WriteFile(filepath.Join(out, "index", name), b, 0o644); err != nil {
			return 0, time.Time{}, err
		}
	}
	return len(files), modified, nil
}

// download fetches mod through the module proxy (or finds it in the
// module cache) and returns its data/osv directory and its commit time.
func download(mod string) (string, time.Time, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s: %w\n%s%s", mod, err, stderr.Bytes(), b)
	}
	var dl struct{ Dir, Info, Error string }
	if err := json.Unmarshal(b, &dl); err != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if dl.Error != "" {
		return "", time.Time{}, fmt.Errorf("go mod download %s: %s", mod, dl.Error)
	}
	b, err = os.ReadFile(dl.Info)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("go mod download %s: %w", mod, err)
	}
	var info struct{ Time time.Time }
	if err := json.Unmarshal(b, &info); err != nil {
		return "", time.Time{}, fmt.Errorf("decode %s: %w", dl.Info, err)
	}
	return filepath.Join(dl.Dir, "data", "osv"), info.Time, nil
}

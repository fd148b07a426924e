package plugins_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

// The filter plugin that docs/plugins.md builds in a module of its own
// ("A filter plugin in its own module"). Its files are kept here, and the
// documentation shows them verbatim: TestOutOfTreeRecipeInDocs checks
// that, and TestOutOfTreeFilter builds and runs them.
const (
	outOfTreeDir = "testdata/nolinks"
	docsPath     = "../docs/plugins.md"
)

// outOfTreeFiles are the files of the recipe, each shown in docsPath
// after a "<!-- testdata: plugins/testdata/nolinks/NAME -->" line.
var outOfTreeFiles = []string{"go.mod", "main.go", "qq.yaml"}

// docBlockMarker introduces a code block of the documentation that must
// equal a file of the repository.
var docBlockMarker = regexp.MustCompile(`^<!-- testdata: (\S+) -->$`)

// docBlocks returns, by file path (relative to the repository root), the
// code blocks of the Markdown file at path that follow a docBlockMarker.
func docBlocks(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := docBlockMarker.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			t.Fatalf("%s: %s is not followed by a code block", path, m[0])
		}
		var b strings.Builder
		closed := false
		for sc.Scan() {
			if sc.Text() == "```" {
				closed = true
				break
			}
			b.WriteString(sc.Text() + "\n")
		}
		if !closed {
			t.Fatalf("%s: the code block after %s is not closed", path, m[0])
		}
		if _, dup := blocks[m[1]]; dup {
			t.Fatalf("%s: %s appears twice", path, m[0])
		}
		blocks[m[1]] = b.String()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// goDirective returns the version of the go line of the go.mod at path.
func goDirective(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return v
		}
	}
	t.Fatalf("%s has no go line", path)
	return ""
}

// TestOutOfTreeRecipeInDocs: the recipe's files are what docs/plugins.md
// shows, its go.mod names the Go version qq's does, and its qq.yaml keeps
// qqd's default filters (setting filters replaces the default list).
func TestOutOfTreeRecipeInDocs(t *testing.T) {
	blocks := docBlocks(t, docsPath)
	for _, name := range outOfTreeFiles {
		path := filepath.Join(outOfTreeDir, name)
		key := filepath.ToSlash(filepath.Join("plugins", path))
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := blocks[key]
		if !ok {
			t.Errorf("%s shows no <!-- testdata: %s --> code block", docsPath, key)
			continue
		}
		if got != string(want) {
			t.Errorf("%s: the code block of %s differs from the file; copy the file into the documentation", docsPath, key)
		}
		delete(blocks, key)
	}
	for key := range blocks {
		if _, err := os.Stat(filepath.Join("..", key)); err != nil {
			t.Errorf("%s shows %s, which does not exist: %v", docsPath, key, err)
		}
	}

	if got, want := goDirective(t, filepath.Join(outOfTreeDir, "go.mod")), goDirective(t, "../go.mod"); got != want {
		t.Errorf("%s/go.mod says go %s, qq's go.mod go %s", outOfTreeDir, got, want)
	}

	cfg := loadRecipeConfig(t)
	defaults := config.Default().Filters
	if len(cfg.Filters) != len(defaults)+1 {
		t.Fatalf("%s/qq.yaml has %d filters, want qqd's %d default ones and nolinks", outOfTreeDir, len(cfg.Filters), len(defaults))
	}
	for i, want := range defaults {
		got, _ := json.Marshal(cfg.Filters[i])
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Errorf("%s/qq.yaml filters[%d] = %s, want the default %s", outOfTreeDir, i, got, wantJSON)
		}
	}
}

// loadRecipeConfig loads the recipe's qq.yaml as qqd would.
func loadRecipeConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Options{File: filepath.Join(outOfTreeDir, "qq.yaml")})
	if err != nil {
		t.Fatalf("load %s/qq.yaml: %v", outOfTreeDir, err)
	}
	return cfg
}

// TestOutOfTreeFilter follows the recipe of docs/plugins.md: it builds
// the nolinks plugin as a module of its own that requires qq through a
// replace directive, then runs it as qqd would, with the configuration
// its qq.yaml gives it.
//
// It works offline, from the module cache that "go mod download" fills
// for qq. "go mod tidy", the recipe's step that fills go.mod and go.sum,
// would check sums on the network, so the test does its work instead:
// it gives the module qq's requirements and qq's go.sum.
func TestOutOfTreeFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module with the go command")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"go.mod", "main.go"} {
		copyFile(t, filepath.Join(outOfTreeDir, name), filepath.Join(dir, name))
	}
	copyFile(t, filepath.Join(root, "go.sum"), filepath.Join(dir, "go.sum"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	goCmd := func(dir string, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GOFLAGS=-mod=mod -buildvcs=false", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, stderr)
		}
		return out
	}

	// The replace directive points at this checkout.
	goCmd(dir, "mod", "edit", "-replace=github.com/qqchat/qq="+root)
	// In place of "go mod tidy": qq's requirements.
	var qqMod struct {
		Require []struct{ Path, Version string }
	}
	if err := json.Unmarshal(goCmd(root, "mod", "edit", "-json"), &qqMod); err != nil {
		t.Fatal(err)
	}
	edit := []string{"mod", "edit"}
	for _, r := range qqMod.Require {
		edit = append(edit, "-require="+r.Path+"@"+r.Version)
	}
	goCmd(dir, edit...)
	bin := filepath.Join(dir, "nolinks")
	goCmd(dir, "build", "-o", bin, ".")

	// Run it as qqd would run the filters entry of the recipe's qq.yaml.
	cfg := loadRecipeConfig(t)
	i := slices.IndexFunc(cfg.Filters, func(f config.Filter) bool { return f.Name == "nolinks" })
	if i < 0 {
		t.Fatalf("%s/qq.yaml has no filter named nolinks", outOfTreeDir)
	}
	fc := cfg.Filters[i]
	conf, err := json.Marshal(fc.Config)
	if err != nil {
		t.Fatal(err)
	}
	var log daemontest.SyncBuffer
	start := func(conf []byte) (*plugins.Process, error) {
		p, err := plugins.Start(ctx, plugins.Spec{
			Name: fc.Name, Kind: plugins.KindFilter, Command: append([]string{bin}, fc.Command[1:]...),
			Config: conf, Logger: slog.New(slog.NewTextHandler(&log, nil)),
		})
		if p != nil {
			t.Cleanup(p.Kill)
		}
		return p, err
	}
	p, err := start(conf)
	if err != nil {
		t.Fatalf("start nolinks: %v\nlog:\n%s", err, log.String())
	}
	callCtx, callCancel := context.WithTimeout(ctx, fc.Timeout)
	defer callCancel()
	vs, err := p.Filter().Filter(callCtx, []plugins.FilterMessage{
		{From: "alice", To: "bob", Body: "lunch at noon?"},
		{From: "alice", To: "bob", Body: "the menu: https://qq.example/menu"},
		{From: "mallory", To: "bob", Body: "cheap followers (https://followers.invalid/buy)"},
		{From: "alice", To: "bob", Body: "HTTPS://QQ.EXAMPLE/ too"},
	})
	if err != nil {
		t.Fatalf("Filter: %v\nlog:\n%s", err, log.String())
	}
	reject := plugins.Verdict{Action: plugins.Reject, Reason: "links are not allowed here, except to qq.example"}
	want := []plugins.Verdict{{Action: plugins.Allow}, {Action: plugins.Allow}, reject, {Action: plugins.Allow}}
	if !slices.Equal(vs, want) {
		t.Errorf("Filter = %+v, want %+v", vs, want)
	}

	// A configuration it refuses: every problem, in the plugin's words.
	_, err = start([]byte(`{"allow_host": ["qq.example"], "allow_hosts": ["https://qq.example"]}`))
	if !errors.Is(err, plugins.ErrConfig) ||
		!strings.Contains(err.Error(), "nolinks: allow_host: unknown key") ||
		!strings.Contains(err.Error(), `allow_hosts[0]: want a host name such as "qq.example", got "https://qq.example"`) {
		t.Errorf("start with a bad config: %v, want ErrConfig naming both problems", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// TestStorageMigratePostgres: sqlite to postgres and on to pebble with
// `qqd storage migrate`, export and import of a postgres store, and the
// refusals (a target database that holds data is left alone; a failed
// import empties the database again).
func TestStorageMigratePostgres(t *testing.T) {
	srv := pg.Server(t)
	dir := t.TempDir()
	src, peb := filepath.Join(dir, "src.db"), filepath.Join(dir, "qq.pebble")
	fillSQLite(t, src)
	dsn := pgtesting.NewDB(t, srv)
	out, errOut, err := runStorageCmd(t, "migrate", "-from-plugin", "sqlite", "-from", src, "-to-plugin", "postgres", "-to", dsn)
	if err != nil {
		t.Fatalf("migrate to postgres: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "and verified it: 3 users (1 deleted), 3 messages (2 pending)") || strings.Contains(out, "sslmode") {
		t.Errorf("migrate reported %q", out)
	}
	want := inspectJSON(t, "-plugin", "sqlite", "-path", src)
	check := func(what string, args ...string) {
		t.Helper()
		got := inspectJSON(t, args...)
		a, b := want, got
		a.Created, b.Created, a.Source, b.Source = 0, 0, "", ""
		if a != b {
			t.Errorf("%s:\n%+v\nwant\n%+v", what, b, a)
		}
	}
	check("postgres after migrate", "-plugin", "postgres", "-dsn", dsn)

	// A target database with data is refused and left as it was.
	_, _, err = runStorageCmd(t, "migrate", "-from-plugin", "sqlite", "-from", src, "-to-plugin", "postgres", "-to", dsn)
	if err == nil || !strings.Contains(err.Error(), "holds data") {
		t.Errorf("migrate onto a database with data: %v", err)
	}
	check("postgres after a refused migrate", "-plugin", "postgres", "-dsn", dsn)

	// On to pebble.
	if _, errOut, err := runStorageCmd(t, "migrate", "-from-plugin", "postgres", "-from", dsn, "-to-plugin", "pebble", "-to", peb); err != nil {
		t.Fatalf("migrate postgres to pebble: %v\n%s", err, errOut)
	}
	check("pebble after postgres", "-plugin", "pebble", "-path", peb)

	// Export, and import into another database.
	dump := filepath.Join(dir, "dump.jsonl")
	if _, errOut, err := runStorageCmd(t, "export", "-plugin", "postgres", "-dsn", dsn, "-o", dump); err != nil {
		t.Fatalf("export: %v\n%s", err, errOut)
	}
	dsn2 := pgtesting.NewDB(t, srv)
	if _, errOut, err := runStorageCmd(t, "import", "-plugin", "postgres", "-dsn", dsn2, "-i", dump); err != nil {
		t.Fatalf("import: %v\n%s", err, errOut)
	}
	check("postgres after export and import", "-plugin", "postgres", "-dsn", dsn2)

	// A truncated dump: the import fails and the database is empty
	// again.
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	cut := filepath.Join(dir, "cut.jsonl")
	if err := os.WriteFile(cut, []byte(strings.Join(lines[:len(lines)/2], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	dsn3 := pgtesting.NewDB(t, srv)
	if _, _, err := runStorageCmd(t, "import", "-plugin", "postgres", "-dsn", dsn3, "-i", cut); err == nil {
		t.Fatal("import of a truncated dump: no error")
	}
	if sum := inspectJSON(t, "-plugin", "postgres", "-dsn", dsn3); sum.Counts.Users != 0 || sum.Counts.Messages != 0 {
		t.Errorf("after a failed import the database holds %+v", sum.Counts)
	}

	// Flags.
	for _, args := range [][]string{
		{"inspect", "-plugin", "postgres", "-path", dsn},
		{"inspect", "-plugin", "sqlite", "-dsn", dsn},
		{"inspect", "-plugin", "postgres"},
	} {
		if _, _, err := runStorageCmd(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestStoragePostgresEndToEnd runs qqd on the built-in postgres plugin (a
// subprocess, "qqd plugin postgres"): a message to an offline user is
// stored and fetched after login, with its seq.
func TestStoragePostgresEndToEnd(t *testing.T) {
	dsn := pgtesting.NewDB(t, pg.Server(t))
	dir := t.TempDir()
	p := startQQD(t, dir, "-config", writeConfig(t, dir, fmt.Sprintf(
		"filters: []\nstorage:\n  plugin: postgres\n  config:\n    dsn: %q\n    max_conns: 4\n", dsn)))
	if pids := pluginPIDs(t, p.cmd.Process.Pid); pids["postgres"] == 0 {
		t.Fatalf("the postgres plugin is not running as a subprocess of qqd (children: %v)", pids)
	}
	ctx := t.Context()
	bob := dialClient(t, p.addr, "bob")
	bob.Close()
	alice := dialClient(t, p.addr, "alice")
	if _, err := alice.Send(ctx, "bob", "while you were away"); err != nil {
		t.Fatalf("send: %v", err)
	}
	bob = dialClient(t, p.addr, "bob")
	msgs, _, err := bob.Offline(ctx, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Offline = %+v, %v; want one message", msgs, err)
	}
	m := msgs[0]
	if m.Body != "while you were away" || m.From != "alice" || m.Seq != 1 {
		t.Errorf("bob got %+v, want alice's message with seq 1", m)
	}
}

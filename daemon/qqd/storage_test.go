package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagedump"
)

// runStorageCmd runs "qqd storage args..." in process and returns its
// stdout and stderr.
func runStorageCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = runStorage(ctx, args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// fillSQLite creates a SQLite store at path with a little of everything:
// users (one deleted), messages (pending and acked), a friendship, a
// group with a message, a token.
func fillSQLite(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: path, Synchronous: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateUser(ctx, u, "hash-"+u); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		{From: "alice", To: "bob", Body: "one", CID: "c1", Status: protocol.StatusQueued},
		{From: "bob", To: "alice", Body: "two", Status: protocol.StatusSent},
		{From: "carol", To: "alice", Body: "three", Status: protocol.StatusQueued},
	}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	if _, err := st.Write(ctx, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{res[0].Message.ID}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RequestFriend(ctx, "alice", "bob", "hi", 1); err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGroup(ctx, "alice", "g", plugins.PolicyOpen, plugins.HistoryJoined, 2, plugins.GroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(ctx, &plugins.WriteBatch{GroupMessages: []plugins.NewGroupMessage{{Group: g.ID, From: "alice", Body: "hey"}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddToken(ctx, plugins.Token{ID: "0123456789abcdef", User: "bob", Hash: []byte("0123456789abcdef0123456789abcdef"), Created: 1, LastUsed: 1, Expires: 1 << 50}, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
}

// inspectJSON runs inspect -json with args and decodes its output.
func inspectJSON(t *testing.T, args ...string) storagedump.Summary {
	t.Helper()
	out, errOut, err := runStorageCmd(t, append([]string{"inspect", "-json"}, args...)...)
	if err != nil {
		t.Fatalf("inspect %v: %v\n%s", args, err, errOut)
	}
	var sum storagedump.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("inspect -json output %q: %v", out, err)
	}
	return sum
}

func TestStorageExportImport(t *testing.T) {
	dir := t.TempDir()
	src, dump, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dump.jsonl"), filepath.Join(dir, "dst.db")
	fillSQLite(t, src)

	_, errOut, err := runStorageCmd(t, "export", "-plugin", "sqlite", "-path", src, "-o", dump)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "exported 3 users (1 deleted), 3 messages (2 pending)") {
		t.Errorf("export reported %q", errOut)
	}
	// -o does not overwrite.
	if _, _, err := runStorageCmd(t, "export", "-plugin", "sqlite", "-path", src, "-o", dump); err == nil {
		t.Error("export over an existing file: no error")
	}
	out, errOut, err := runStorageCmd(t, "import", "-plugin", "sqlite", "-path", dst, "-i", dump)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "imported into sqlite "+dst) {
		t.Errorf("import reported %q", out)
	}
	want := inspectJSON(t, "-plugin", "sqlite", "-path", src)
	if want.Counts.Users != 3 || want.DeletedUsers != 1 || want.Counts.Messages != 3 || want.Counts.Pending != 2 ||
		want.Counts.Groups != 1 || want.Counts.GroupEntries != 2 || want.Counts.Tokens != 1 || want.Counts.FriendRequests != 1 {
		t.Errorf("inspect of the source: %+v", want)
	}
	for _, args := range [][]string{{"-plugin", "sqlite", "-path", dst}, {"-i", dump}} {
		got := inspectJSON(t, args...)
		got.Created, want.Created = 0, 0
		if got != want {
			t.Errorf("inspect %v:\n%+v\nwant\n%+v", args, got, want)
		}
	}
	text, _, err := runStorageCmd(t, "inspect", "-i", dump)
	if err != nil || !strings.Contains(text, "users:            3 (2 live, 1 deleted)") {
		t.Errorf("inspect = %q, %v", text, err)
	}
	// A truncated dump (no trailer) is an error for inspect too.
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	cut := filepath.Join(dir, "cut.jsonl")
	if err := os.WriteFile(cut, []byte(strings.Join(lines[:len(lines)-1], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runStorageCmd(t, "inspect", "-i", cut); err == nil {
		t.Errorf("inspect of a dump without its trailer = %q, no error", out)
	}

	// The target must be new.
	if _, _, err := runStorageCmd(t, "import", "-plugin", "sqlite", "-path", dst, "-i", dump); err == nil || !strings.Contains(err.Error(), "must be a new store") {
		t.Errorf("import into an existing store: %v", err)
	}
}

// TestStorageImportFailureRemoves: a damaged dump fails the import, and
// the new store is gone.
func TestStorageImportFailureRemoves(t *testing.T) {
	dir := t.TempDir()
	src, dump := filepath.Join(dir, "src.db"), filepath.Join(dir, "dump.jsonl")
	fillSQLite(t, src)
	if _, errOut, err := runStorageCmd(t, "export", "-plugin", "sqlite", "-path", src, "-o", dump); err != nil {
		t.Fatalf("export: %v\n%s", err, errOut)
	}
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	for name, broken := range map[string]string{
		"truncated":     strings.Join(lines[:len(lines)-2], ""),
		"no trailer":    strings.Join(lines[:len(lines)-1], ""),
		"lost a record": strings.Join(append(lines[:3:3], lines[4:]...), ""),
		"not a dump":    "hello\n",
	} {
		t.Run(name, func(t *testing.T) {
			bad, dst := filepath.Join(t.TempDir(), "bad.jsonl"), filepath.Join(t.TempDir(), "sub", "dst.db")
			if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := runStorageCmd(t, "import", "-plugin", "sqlite", "-path", dst, "-i", bad)
			if err == nil || !strings.Contains(err.Error(), "the new store was removed") {
				t.Errorf("import of a %s dump: %v", name, err)
			}
			for _, p := range []string{dst, dst + "-wal", dst + "-shm", filepath.Dir(dst)} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s is left behind: %v", p, err)
				}
			}
		})
	}
}

func TestStorageMigrate(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
	fillSQLite(t, src)
	out, errOut, err := runStorageCmd(t, "migrate", "-from-plugin", "sqlite", "-from", src, "-to-plugin", "sqlite", "-to", dst)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "and verified it: 3 users (1 deleted), 3 messages (2 pending)") {
		t.Errorf("migrate reported %q", out)
	}
	a, b := inspectJSON(t, "-plugin", "sqlite", "-path", src), inspectJSON(t, "-plugin", "sqlite", "-path", dst)
	a.Created, b.Created = 0, 0
	if a != b {
		t.Errorf("after migrate:\n%+v\n%+v", a, b)
	}
	// And back: the target exists now.
	if _, _, err := runStorageCmd(t, "migrate", "-from-plugin", "sqlite", "-from", dst, "-to-plugin", "sqlite", "-to", src); err == nil {
		t.Error("migrate onto an existing store: no error")
	}
	if _, _, err := runStorageCmd(t, "migrate", "-from-plugin", "sqlite", "-from", filepath.Join(dir, "none.db"), "-to-plugin", "sqlite", "-to", filepath.Join(dir, "x.db")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("migrate from a missing store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); !os.IsNotExist(err) {
		t.Errorf("migrate from a missing store created it: %v", err)
	}
}

// TestStorageMigratePebble: sqlite to Pebble and back, nothing lost.
func TestStorageMigratePebble(t *testing.T) {
	dir := t.TempDir()
	src, peb, back := filepath.Join(dir, "src.db"), filepath.Join(dir, "qq.pebble"), filepath.Join(dir, "back.db")
	fillSQLite(t, src)
	_, _, err := runStorageCmd(t, "migrate", "-from", src, "-to", peb) // sqlite to pebble are the defaults
	if err != nil {
		t.Fatalf("migrate to pebble: %v", err)
	}
	if _, _, err := runStorageCmd(t, "migrate", "-from-plugin", "pebble", "-from", peb, "-to-plugin", "sqlite", "-to", back); err != nil {
		t.Fatalf("migrate back: %v", err)
	}
	a, b := inspectJSON(t, "-plugin", "sqlite", "-path", src), inspectJSON(t, "-plugin", "sqlite", "-path", back)
	a.Created, b.Created, a.Source, b.Source = 0, 0, "", ""
	if a != b {
		t.Errorf("after sqlite -> pebble -> sqlite:\n%+v\n%+v", a, b)
	}
}

// TestStoragePebbleLocked: a Pebble store a daemon has open is refused
// with a hint.
func TestStoragePebbleLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qq.pebble")
	st, err := pebblestore.Open(context.Background(), pebblestore.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, err = runStorageCmd(t, "inspect", "-plugin", "pebble", "-path", path)
	if err == nil || !strings.Contains(err.Error(), "is a qqd running on it?") {
		t.Errorf("inspect of an open pebble store = %v", err)
	}
}

// TestStorageConfig: -config names the configured store; a third-party
// storage plugin is refused.
func TestStorageConfig(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	fillSQLite(t, filepath.Join(data, "chat.db"))
	yaml := filepath.Join(dir, "qq.yaml")
	conf := "data_dir: " + data + "\nstorage:\n  plugin: sqlite\n  config:\n    path: chat.db\n"
	if err := os.WriteFile(yaml, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if sum := inspectJSON(t, "-config", yaml); sum.Counts.Users != 3 || sum.Source != "sqlite" {
		t.Errorf("inspect -config: %+v", sum)
	}
	third := filepath.Join(dir, "third.yaml")
	conf = "data_dir: " + data + "\nstorage:\n  command: [\"/usr/local/bin/mystore\"]\n"
	if err := os.WriteFile(third, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runStorageCmd(t, "export", "-config", third)
	if err == nil || !strings.Contains(err.Error(), "export/import supports the built-in storages sqlite, pebble and postgres") {
		t.Errorf("export of a third-party storage = %v", err)
	}
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"export", "-plugin", "mysql", "-path", "x"}, {"export", "-plugin", "sqlite"},
		{"import", "-config", yaml, "-path", "x"}, {"migrate", "-from", "x"},
	} {
		if _, _, err := runStorageCmd(t, args...); err == nil {
			t.Errorf("storage %v: no error", args)
		}
	}
}

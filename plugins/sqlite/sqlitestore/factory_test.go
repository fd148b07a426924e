package sqlitestore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

func TestLookupCIDs(t *testing.T) {
	s, _, _ := newStore(t)
	res := write(t, s, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		nm("alice", "bob", "one", "c1"),
		nm("alice", "bob", "two", ""),
	}})
	got, err := s.LookupCIDs(context.Background(), []plugins.CIDKey{
		{From: "alice", CID: "c1"}, {From: "bob", CID: "c1"}, {From: "alice", CID: ""}, {From: "alice", CID: "nope"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Duplicate || got[0].Message != res[0].Message || got[0].Status != res[0].Status {
		t.Errorf("LookupCIDs[0] = %+v, want duplicate of %+v", got[0], res[0])
	}
	for i := 1; i < 4; i++ {
		if got[i].Duplicate || got[i].Message.ID != "" {
			t.Errorf("LookupCIDs[%d] = %+v, want zero", i, got[i])
		}
	}
}

func TestParseConfig(t *testing.T) {
	env := plugins.Env{DataDir: "/var/lib/qqd"}
	for _, tc := range []struct {
		config   string
		wantPath string
		wantErr  []string
	}{
		{``, "/var/lib/qqd/qq.db", nil},
		{`{}`, "/var/lib/qqd/qq.db", nil},
		{`{"path":"x/y.db","synchronous":"normal","dedup_window":"0"}`, "/var/lib/qqd/x/y.db", nil},
		{`{"path":"/abs.db"}`, "/abs.db", nil},
		{`{"dedup_window":0}`, "/var/lib/qqd/qq.db", nil},
		{`{"dedup_window":5}`, "", []string{"dedup_window"}},
		{`{"pth":"x"}`, "", []string{"pth"}},
		{`{"path":"","synchronous":"fast","dedup_window":"soon"}`, "", []string{"path", "synchronous", "dedup_window"}},
		{`[1]`, "", []string{"sqlite config"}},
	} {
		opts, err := sqlitestore.ParseConfig(env, []byte(tc.config))
		if len(tc.wantErr) == 0 {
			if err != nil || opts.Path != tc.wantPath {
				t.Errorf("ParseConfig(%s) = %q, %v; want %q", tc.config, opts.Path, err, tc.wantPath)
			}
			continue
		}
		for _, w := range tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("ParseConfig(%s) error = %v, want it to name %q", tc.config, err, w)
			}
		}
	}
}

func TestNewFactory(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlitestore.New(plugins.Env{DataDir: dir}, []byte(`{"dedup_window":"1h"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "qq.db")); err != nil {
		t.Fatalf("database not at the default path: %v", err)
	}
}

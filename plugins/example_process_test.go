package plugins_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// startExample starts the test binary as a plugin process serving one of
// the package examples' factories (see TestMain), as qqd would start it,
// and kills it when the test ends.
func startExample(t *testing.T, serve string, kind plugins.Kind, config []byte, env plugins.Env) (*plugins.Process, error) {
	t.Helper()
	t.Setenv(envServe, serve)
	ctx, cancel := context.WithTimeout(context.Background(), plugins.DefaultStartTimeout)
	defer cancel()
	p, err := plugins.Start(ctx, plugins.Spec{
		Name: serve, Kind: kind, Command: []string{os.Args[0]},
		Config: config, Env: env, Logger: slog.New(slog.DiscardHandler),
	})
	if p != nil {
		t.Cleanup(p.Kill)
	}
	return p, err
}

// TestExampleFilterOutOfProcess: the filter of Example_filterPlugin gives
// the same verdicts, and its factory the same refusal, across the process
// boundary.
func TestExampleFilterOutOfProcess(t *testing.T) {
	p, err := startExample(t, "quiet", plugins.KindFilter, []byte(`{"banned": ["spam"], "reason": "no spam here"}`), plugins.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), plugins.DefaultStartTimeout)
	defer cancel()
	vs, err := p.Filter().Filter(ctx, []plugins.FilterMessage{
		{From: "alice", To: "bob", Body: "lunch at noon?"},
		{From: "alice", To: "bob", Body: "WHERE ARE YOU"},
		{From: "mallory", To: "bob", Body: "Cheap SPAM, buy now"},
	})
	if err != nil {
		t.Fatalf("Filter: %v", err)
	}
	want := []plugins.Verdict{
		{Action: plugins.Allow},
		{Action: plugins.Rewrite, Body: "where are you"},
		{Action: plugins.Reject, Reason: "no spam here"},
	}
	if len(vs) != len(want) {
		t.Fatalf("Filter = %+v, want %+v", vs, want)
	}
	for i := range want {
		if vs[i] != want[i] {
			t.Errorf("verdict %d = %+v, want %+v", i, vs[i], want[i])
		}
	}

	_, err = startExample(t, "quiet", plugins.KindFilter, []byte(`{"baned": ["spam"]}`), plugins.Env{})
	if !errors.Is(err, plugins.ErrConfig) || !strings.Contains(err.Error(), "quiet: baned: unknown key") {
		t.Errorf("start with a misspelt key: %v, want ErrConfig with the factory's text", err)
	}
}

// TestExampleStorageOutOfProcess: the storage of Example_storagePlugin
// answers the same across the process boundary, its ErrUserExists
// included.
func TestExampleStorageOutOfProcess(t *testing.T) {
	p, err := startExample(t, "reservednames", plugins.KindStorage,
		[]byte(`{"reserved_prefixes": ["admin"], "sqlite": {"path": "qq.db"}}`), plugins.Env{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st := p.Storage()
	ctx, cancel := context.WithTimeout(context.Background(), plugins.DefaultStartTimeout)
	defer cancel()
	if err := st.CreateUser(ctx, "admin2", "h"); !errors.Is(err, plugins.ErrUserExists) || !strings.Contains(err.Error(), `"admin2" is reserved`) {
		t.Errorf("CreateUser admin2: %v, want ErrUserExists", err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "h"); err != nil {
			t.Fatalf("CreateUser %s: %v", u, err)
		}
	}
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		{From: "alice", To: "bob", Body: "lunch at noon?", CID: "c1", Status: protocol.StatusQueued},
		{From: "alice", To: "bob", Body: "lunch at noon??", CID: "c1", Status: protocol.StatusSent},
	}})
	if err != nil || len(res) != 2 {
		t.Fatalf("Write = %+v, %v", res, err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].Message != res[0].Message || res[1].Status != protocol.StatusQueued {
		t.Errorf("Write results = %+v, want the second a duplicate of the first, with its status", res)
	}
	if n, err := st.PendingCount(ctx, "bob"); n != 1 || err != nil {
		t.Errorf("PendingCount = %d, %v, want 1", n, err)
	}
	// The wrapped store's friends methods cross too.
	soc, ok := plugins.SocialOf(st)
	if !ok {
		t.Fatal("SocialOf(reservednames) = false, want the wrapped store's Social")
	}
	if became, err := soc.RequestFriend(ctx, "alice", "bob", "hi", 1); err != nil || became {
		t.Errorf("RequestFriend = %v, %v", became, err)
	}

	_, err = startExample(t, "reservednames", plugins.KindStorage, []byte(`{"sqlite": {"synchronus": "off"}}`), plugins.Env{DataDir: t.TempDir()})
	if !errors.Is(err, plugins.ErrConfig) || !strings.Contains(err.Error(), "reservednames: sqlite config: synchronus: unknown key") {
		t.Errorf("start with a misspelt sqlite key: %v, want ErrConfig with the factory's text", err)
	}
}

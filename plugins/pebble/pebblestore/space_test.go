package pebblestore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// TestLowSpace fills a small filesystem with messages: the store starts
// refusing them (ErrLowSpace, nothing written) before the disk is full,
// no Write hangs (Pebble stalls commits on a full disk), and acks, reads
// and a reopen still work. It needs root (a tmpfs); it skips otherwise.
func TestLowSpace(t *testing.T) {
	dir := storagetest.MountTmpfs(t, 16<<20)
	path := filepath.Join(dir, "qq.pebble")
	s, err := pebblestore.Open(context.Background(), pebblestore.Options{
		Path: path, DedupWindow: time.Hour, CacheSize: 1 << 20, MemTableSize: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A ballast file that a Write found hanging removes, so that Pebble
	// can flush again, the Write return and the store close.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the unmount, but never blocking it
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("Close hangs")
		}
	})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	// write runs one Write and fails the test if it does not return in
	// time: a stalled commit never would.
	write := func(b *plugins.WriteBatch) ([]plugins.AppendResult, error) {
		t.Helper()
		type result struct {
			res []plugins.AppendResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := s.Write(ctx, b)
			done <- result{res, err}
		}()
		select {
		case r := <-done:
			return r.res, r.err
		case <-time.After(30 * time.Second):
			_ = os.Remove(ballast)
			t.Fatal("Write hangs: the disk filled up and Pebble stalled")
			return nil, nil
		}
	}
	// Incompressible bodies, so that sstables take space too.
	rng := rand.New(rand.NewPCG(1, 2))
	body := func() string {
		var b strings.Builder
		for range 500 {
			fmt.Fprintf(&b, "%08x", rng.Uint32())
		}
		return b.String()
	}
	var stored []string
	refused := false
	for i := 0; i < 2000 && !refused; i++ {
		var msgs []plugins.NewMessage
		for j := range 16 {
			msgs = append(msgs, nm("alice", "bob", body(), fmt.Sprintf("%d-%d", i, j)))
		}
		res, err := write(&plugins.WriteBatch{Messages: msgs})
		var we *plugins.WriteError
		switch {
		case err == nil:
			for _, r := range res {
				stored = append(stored, r.Message.ID)
			}
		case errors.Is(err, pebblestore.ErrLowSpace) && errors.As(err, &we) && !we.MaybeWritten:
			refused = true
		default:
			t.Fatalf("batch %d: Write = %v, want success or ErrLowSpace with nothing written", i, err)
		}
	}
	if !refused {
		t.Fatalf("stored %d messages on a 16 MiB filesystem without running low", len(stored))
	}
	t.Logf("stored %d messages before the reserve", len(stored))
	if err := s.CreateUser(ctx, "carol", "h"); !errors.Is(err, pebblestore.ErrLowSpace) {
		t.Errorf("CreateUser while low = %v, want ErrLowSpace", err)
	}
	// Acks still commit, and reads work.
	if _, err := write(&plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: stored[:100]}}}); err != nil {
		t.Fatalf("ack while low: %v", err)
	}
	if n, err := s.PendingCount(ctx, "bob"); err != nil || n != int64(len(stored)-100) {
		t.Errorf("PendingCount(bob) = %d, %v; want %d", n, err, len(stored)-100)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = pebblestore.Open(ctx, pebblestore.Options{Path: path, DedupWindow: time.Hour, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("reopen while low: %v", err)
	}
	if p, _, err := s.Pending(ctx, "bob", 1); err != nil || len(p) != 1 || p[0].ID != stored[100] {
		t.Errorf("Pending(bob) after reopen = %+v, %v; want %s first", p, err, stored[100])
	}
}

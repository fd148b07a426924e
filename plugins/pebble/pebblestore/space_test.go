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

// TestOpenOnFullDisk: a store opened on a full disk (its plugin restarted
// after Pebble gave up on a write that found no space) opens read-only:
// logins, pending and history are served from what is stored, and writes
// are refused with ErrLowSpace, nothing written. Once space is free, a
// new Open writes again. It needs root (a tmpfs); it skips otherwise.
func TestOpenOnFullDisk(t *testing.T) {
	dir := storagetest.MountTmpfs(t, 16<<20)
	path := filepath.Join(dir, "qq.pebble")
	opts := pebblestore.Options{Path: path, DedupWindow: time.Hour, CacheSize: 1 << 20, MemTableSize: 1 << 20}
	ctx := context.Background()
	s, err := pebblestore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, u, "h-"+u); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		{From: "alice", To: "bob", Body: "one", Status: "queued"},
		{From: "alice", To: "bob", Body: "two", Status: "queued"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Fill the filesystem to the last byte.
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for n := len(chunk) / 2; n > 0; n /= 2 {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	f.Close()

	s, err = pebblestore.Open(ctx, opts)
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	if h, err := s.PasswordHash(ctx, "bob"); err != nil || h != "h-bob" {
		t.Errorf("PasswordHash(bob) = %q, %v", h, err)
	}
	if p, _, err := s.Pending(ctx, "bob", 10); err != nil || len(p) != 2 || p[0].ID != res[0].Message.ID {
		t.Errorf("Pending(bob) = %v, %v; want the two messages", p, err)
	}
	if h, _, err := s.History(ctx, "alice", "bob", "", 10); err != nil || len(h) != 2 {
		t.Errorf("History = %v, %v; want the two messages", h, err)
	}
	_, err = s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{{From: "bob", To: "alice", Body: "three", Status: "queued"}}})
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten || !errors.Is(err, pebblestore.ErrLowSpace) {
		t.Errorf("Write on a read-only store = %v; want a WriteError, nothing written, wrapping ErrLowSpace", err)
	}
	if err := s.CreateUser(ctx, "carol", "h"); !errors.Is(err, pebblestore.ErrLowSpace) {
		t.Errorf("CreateUser on a read-only store = %v; want ErrLowSpace", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Space again: a new Open writes, and nothing was lost.
	if err := os.Remove(filepath.Join(dir, "ballast")); err != nil {
		t.Fatal(err)
	}
	s, err = pebblestore.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(ctx, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{res[0].Message.ID}}}}); err != nil {
		t.Fatalf("Write after space came back: %v", err)
	}
	if n, err := s.PendingCount(ctx, "bob"); err != nil || n != 1 {
		t.Errorf("PendingCount(bob) = %d, %v; want 1", n, err)
	}
}

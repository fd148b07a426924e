package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qqchat/qq/plugins"

	"github.com/qqchat/qq/plugins/storagetest"
)

func TestBudgetFor(t *testing.T) {
	for _, tc := range []struct {
		fsSize          int64
		pages, walLimit int64
		reserve         int64
	}{
		{0, walAutocheckpointPages, journalSizeLimit, 0},
		{8 << 20, minCheckpointPages, 1 << 20, 3 << 20},
		{64 << 20, 512, 2 << 20, 5 << 20},
		{1 << 30, 8192, 32 << 20, 65 << 20},
		{1 << 40, walAutocheckpointPages, walAutocheckpointPages * pageSize, 2*walAutocheckpointPages*pageSize + reserveMargin},
	} {
		b := budgetFor(tc.fsSize)
		if b.checkpointPages != tc.pages || b.walLimit != tc.walLimit || b.reserve != tc.reserve {
			t.Errorf("budgetFor(%d) = %+v, want pages %d, wal limit %d, reserve %d", tc.fsSize, b, tc.pages, tc.walLimit, tc.reserve)
		}
		if tc.fsSize > 0 && b.reserve >= tc.fsSize/2 {
			t.Errorf("budgetFor(%d): reserve %d is half the filesystem or more", tc.fsSize, b.reserve)
		}
	}
}

// testLogger logs to t when QQ_TEST_LOG is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("QQ_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// ballast writes path until at most free bytes are left on its
// filesystem.
func ballast(t *testing.T, path string, free int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 16<<10)
	for {
		_, avail, err := diskSpace(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		n := avail - free
		if n <= 0 {
			return
		}
		if _, err := f.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestDiskSpace runs a store on an 8 MiB tmpfs. Below the reserve, a
// Write with messages and CreateUser fail with ErrLowSpace (nothing
// stored) while acks still commit. Without the reserve (as when another
// process takes the last bytes), a Write that meets a full disk fails
// with MaybeWritten false and stores nothing. Once space returns, both
// work again on the same Store.
func TestDiskSpace(t *testing.T) {
	ctx := context.Background()
	fs := storagetest.MountTmpfs(t, 8<<20)
	s, err := Open(ctx, Options{Path: filepath.Join(fs, "qq.db"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.budget.reserve != 3<<20 {
		t.Fatalf("budget on 8 MiB: %+v, want a 3 MiB reserve", s.budget)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	body := strings.Repeat("b", 2000)
	send := func(cid string) ([]plugins.AppendResult, error) {
		return s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{{From: "alice", To: "bob", Body: body, CID: cid}}})
	}
	res, err := send("first")
	if err != nil {
		t.Fatal(err)
	}
	first := res[0].Message.ID
	pending := func() int64 {
		t.Helper()
		n, err := s.PendingCount(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	notStored := func(what string, err error) {
		t.Helper()
		var we *plugins.WriteError
		if !errors.As(err, &we) || we.MaybeWritten {
			t.Fatalf("%s = %v, want a *WriteError with MaybeWritten false", what, err)
		}
	}

	// Below the reserve.
	bal := filepath.Join(fs, "ballast")
	ballast(t, bal, 2<<20)
	_, err = send("low")
	notStored("Write below the reserve", err)
	if !errors.Is(err, ErrLowSpace) {
		t.Fatalf("Write below the reserve = %v, want ErrLowSpace", err)
	}
	if err := s.CreateUser(ctx, "carol", "h"); !errors.Is(err, ErrLowSpace) {
		t.Fatalf("CreateUser below the reserve = %v, want ErrLowSpace", err)
	}
	if _, err := s.Write(ctx, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{first}}}}); err != nil {
		t.Fatalf("ack below the reserve: %v", err)
	}
	if n := pending(); n != 0 {
		t.Fatalf("bob has %d pending, want 0 (first acked, nothing else stored)", n)
	}
	if r, err := s.PasswordHash(ctx, "alice"); err != nil || r != "h" {
		t.Fatalf("a read below the reserve = %q, %v", r, err)
	}

	// Full, with the reserve off: SQLite meets the full disk itself.
	s.wmu.Lock()
	s.budget.reserve = 0
	s.wmu.Unlock()
	ballast(t, bal, 0)
	stored := 0
	for i := range 200 {
		if _, err := send(fmt.Sprintf("full-%d", i)); err != nil {
			notStored("Write on a full disk", err)
			break
		}
		stored++
	}
	if stored == 200 {
		t.Fatal("200 messages of 2 KB fit on a full disk")
	}
	t.Logf("%d messages stored after the disk filled", stored)
	if n := pending(); n != int64(stored) {
		t.Fatalf("bob has %d pending, want the %d stored", n, stored)
	}

	// Space returns.
	if err := os.Remove(bal); err != nil {
		t.Fatal(err)
	}
	s.wmu.Lock()
	s.budget = budgetFor(8 << 20)
	s.wmu.Unlock()
	for i := range 20 {
		if _, err := send(fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatalf("Write after space returned: %v", err)
		}
	}
	if err := s.CreateUser(ctx, "carol", "h"); err != nil {
		t.Fatalf("CreateUser after space returned: %v", err)
	}
	if n := pending(); n != int64(stored)+20 {
		t.Fatalf("bob has %d pending, want %d", n, stored+20)
	}
}

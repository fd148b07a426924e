package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagedump"
)

func openDumpStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Path: filepath.Join(t.TempDir(), "qq.db"), Synchronous: "off"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// slice is an Exporter of fixed records.
type slice []*storagedump.Record

func (s slice) Export(ctx context.Context, emit func(*storagedump.Record) error) error {
	for _, r := range s {
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

// foreignDump is a dump as another store writes it: message ids of
// Pebble's form (13 characters of Crockford base32 counting up), in the
// future, so that the store's clock is behind them.
func foreignDump(n int, ts int64) slice {
	recs := slice{
		{Header: &storagedump.Header{Format: storagedump.Format, Source: "pebble"}},
		{User: &storagedump.User{Name: "alice", PasswordHash: "h", Created: 1}},
		{User: &storagedump.User{Name: "bob", PasswordHash: "h", Created: 1}},
	}
	for i := range n {
		recs = append(recs, &storagedump.Record{Message: &storagedump.Message{
			ID: fmt.Sprintf("%013d", i+1), From: "alice", To: "bob", Body: fmt.Sprint("m", i), TS: ts + int64(i),
			Status: protocol.StatusQueued, Pending: i >= n-2,
		}})
	}
	return append(recs, &storagedump.Record{Trailer: &storagedump.Trailer{Users: 2, Messages: int64(n), Pending: int64(min(n, 2))}})
}

// TestImportForeignIDs: ids of another form are kept, History pages by
// them, acks find them, and new messages come after them in order and
// time.
func TestImportForeignIDs(t *testing.T) {
	ctx := context.Background()
	s := openDumpStore(t)
	const future = int64(4_000_000_000_000) // 2096
	if err := storagedump.Copy(ctx, foreignDump(5, future), s); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	page, more, err := s.History(ctx, "alice", "bob", "", 2)
	if err != nil || !more || len(page) != 2 || page[0].ID != "0000000000004" || page[1].ID != "0000000000005" {
		t.Fatalf("History newest page = %+v, %v, %v", page, more, err)
	}
	page, more, err = s.History(ctx, "alice", "bob", page[0].ID, 10)
	if err != nil || more || len(page) != 3 || page[0].ID != "0000000000001" || page[2].Body != "m2" {
		t.Fatalf("History before 0000000000004 = %+v, %v, %v", page, more, err)
	}
	if n, err := s.PendingCount(ctx, "bob"); err != nil || n != 2 {
		t.Fatalf("PendingCount = %d, %v", n, err)
	}
	if _, err := s.Write(ctx, &plugins.WriteBatch{Acks: []plugins.Ack{{User: "bob", MsgIDs: []string{"0000000000004"}}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingCount(ctx, "bob"); err != nil || n != 1 {
		t.Fatalf("PendingCount after an ack = %d, %v", n, err)
	}
	res, err := s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{{From: "bob", To: "alice", Body: "new", Status: protocol.StatusQueued}}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	if m := res[0].Message; m.TS < future+4 || len(m.ID) != sqlitestore.MsgIDLen {
		t.Errorf("new message %+v: want ts >= %d and an id of this store's form", m, future+4)
	}
	page, _, err = s.History(ctx, "alice", "bob", "", 1)
	if err != nil || page[0].Body != "new" {
		t.Errorf("History newest = %+v, %v", page, err)
	}
}

func TestImportRefuses(t *testing.T) {
	ctx := context.Background()
	t.Run("not empty", func(t *testing.T) {
		s := openDumpStore(t)
		if err := s.CreateUser(ctx, "zed", "h"); err != nil {
			t.Fatal(err)
		}
		if err := storagedump.Copy(ctx, foreignDump(1, 1), s); !errors.Is(err, sqlitestore.ErrNotEmpty) {
			t.Errorf("Copy into a store with a user = %v, want ErrNotEmpty", err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		d := foreignDump(1, 1)
		d[3].Message.To = "carol"
		if err := storagedump.Copy(ctx, d, openDumpStore(t)); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Errorf("Copy of a message to an unknown user = %v", err)
		}
	})
	t.Run("duplicate id", func(t *testing.T) {
		d := foreignDump(2, 1)
		d[4].Message.ID = d[3].Message.ID
		if err := storagedump.Copy(ctx, d, openDumpStore(t)); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
			t.Errorf("Copy of two messages with one id = %v", err)
		}
	})
	t.Run("cid of both kinds", func(t *testing.T) {
		d := foreignDump(1, 1)
		d[3].Message.CID = "c"
		g := slice{
			{Group: &storagedump.Group{ID: 1, Name: "g", Owner: "alice", Policy: plugins.PolicyOpen, History: plugins.HistoryJoined, Members: 1, LastSeq: 2, LastTS: 5}},
			{GroupMember: &storagedump.GroupMember{Group: 1, User: "alice", Role: plugins.RoleOwner, JoinSeq: 1}},
			{GroupEntry: &storagedump.GroupEntry{Group: 1, Seq: 1, Kind: plugins.EntryCreated, TS: 5, Actor: "alice", Name: "g"}},
			{GroupEntry: &storagedump.GroupEntry{Group: 1, Seq: 2, Kind: plugins.EntryMsg, TS: 5, From: "alice", Body: "x", MsgID: "g", CID: "c"}},
		}
		tr := d[len(d)-1].Trailer
		tr.Groups, tr.GroupMembers, tr.GroupEntries = 1, 1, 2
		d = append(append(d[:len(d)-1:len(d)-1], g...), d[len(d)-1])
		if err := storagedump.Copy(ctx, d, openDumpStore(t)); err == nil || !strings.Contains(err.Error(), "names both") {
			t.Errorf("Copy with a cid of both kinds = %v", err)
		}
	})
}

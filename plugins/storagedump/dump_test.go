package storagedump_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/storagedump"
)

// records is an Exporter of a fixed list of records, and collects what
// an import hands it.
type records struct {
	recs []*storagedump.Record
	// exportErr, if set, is returned by Export after emitting recs.
	exportErr error
	// sawTrailer: Import got the Trailer.
	sawTrailer bool
}

func (r *records) Export(ctx context.Context, emit func(*storagedump.Record) error) error {
	for _, rec := range r.recs {
		if err := emit(rec); err != nil {
			return err
		}
	}
	return r.exportErr
}

func (r *records) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	for {
		rec, err := next()
		if err != nil {
			return err
		}
		r.recs = append(r.recs, rec)
		if rec.Trailer != nil {
			r.sawTrailer = true
			return nil
		}
	}
}

// valid is a small dump in order, with its trailer.
func valid() []*storagedump.Record {
	return []*storagedump.Record{
		{Header: &storagedump.Header{Format: storagedump.Format, Source: "test", Created: 1}},
		{User: &storagedump.User{Name: "alice", PasswordHash: "h", Created: 1}},
		{User: &storagedump.User{Name: "bob", Created: 1, Deleted: 2}},
		{Message: &storagedump.Message{ID: "m1", From: "alice", To: "bob", Body: "hi\n\"x\"", TS: 10, CID: "c", Status: "queued", Pending: true}},
		{Message: &storagedump.Message{ID: "m2", From: "bob", To: "alice", Body: "<&>", TS: 11, Status: "sent"}},
		{Friend: &storagedump.Friend{Owner: "alice", Friend: "bob", Since: 3}},
		{Block: &storagedump.Block{Blocker: "bob", Blocked: "alice", TS: 4}},
		{FriendRequest: &storagedump.FriendRequest{From: "bob", To: "alice", TS: 5}},
		{Group: &storagedump.Group{ID: 1, Name: "g", Owner: "alice", Policy: plugins.PolicyOpen, History: plugins.HistoryJoined, Members: 1, LastSeq: 2, LastTS: 21, Created: 20}},
		{GroupMember: &storagedump.GroupMember{Group: 1, User: "alice", Role: plugins.RoleOwner, JoinSeq: 1}},
		{GroupMember: &storagedump.GroupMember{Group: 1, User: "bob", Role: plugins.RoleMember, JoinSeq: 2, LeftSeq: 2}},
		{GroupEntry: &storagedump.GroupEntry{Group: 1, Seq: 1, Kind: plugins.EntryCreated, TS: 20, Actor: "alice", Name: "g"}},
		{GroupEntry: &storagedump.GroupEntry{Group: 1, Seq: 2, Kind: plugins.EntryMsg, TS: 21, From: "alice", Body: "@bob", Mentions: []string{"bob"}, MsgID: "g1"}},
		{JoinRequest: &storagedump.JoinRequest{Group: 1, User: "bob", TS: 22}},
		{GroupCursor: &storagedump.GroupCursor{Group: 1, User: "alice", ReadSeq: 2}},
		{Group: &storagedump.Group{ID: 3, Name: "gone", Owner: "alice", Dissolved: true, LastSeq: 0}},
		{Token: &storagedump.Token{ID: "t1", User: "alice", Hash: []byte{1, 2}, Created: 1, LastUsed: 2, Expires: 3}},
		{Trailer: &storagedump.Trailer{Users: 2, Messages: 2, Pending: 1, Friends: 1, FriendRequests: 1, Blocks: 1,
			Groups: 2, GroupMembers: 2, GroupEntries: 2, JoinRequests: 1, GroupCursors: 1, Tokens: 1}},
	}
}

// encode writes recs as a dump.
func encode(t testing.TB, recs []*storagedump.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := storagedump.NewEncoder(&buf)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDumpRoundTrip(t *testing.T) {
	in := valid()
	data := encode(t, in)
	if n := bytes.Count(data, []byte("\n")); n != len(in) {
		t.Fatalf("%d lines for %d records", n, len(in))
	}
	var got records
	if err := storagedump.Load(context.Background(), storagedump.NewDecoder(bytes.NewReader(data)), &got); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !got.sawTrailer || !bytes.Equal(encode(t, got.recs), data) {
		t.Errorf("Load gave back\n%s\nwant\n%s", encode(t, got.recs), data)
	}
	var copied records
	if err := storagedump.Copy(context.Background(), &records{recs: valid()}, &copied); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if !bytes.Equal(encode(t, copied.recs), data) {
		t.Errorf("Copy gave back\n%s\nwant\n%s", encode(t, copied.recs), data)
	}
}

// TestDumpChecks feeds Load and Copy broken dumps: each must fail, and
// the importer must never see the Trailer.
func TestDumpChecks(t *testing.T) {
	tests := []struct {
		name   string
		change func([]*storagedump.Record) []*storagedump.Record
		want   string
	}{
		{"truncated", func(r []*storagedump.Record) []*storagedump.Record { return r[:len(r)-1] }, "truncated"},
		{"cut in the middle", func(r []*storagedump.Record) []*storagedump.Record { return r[:5] }, "truncated"},
		{"header only", func(r []*storagedump.Record) []*storagedump.Record { return r[:1] }, "truncated"},
		{"wrong format", func(r []*storagedump.Record) []*storagedump.Record {
			r[0].Header.Format = "qq-dump/2"
			return r
		}, "format"},
		{"no header", func(r []*storagedump.Record) []*storagedump.Record { return r[1:] }, "header"},
		{"users unsorted", func(r []*storagedump.Record) []*storagedump.Record {
			r[1], r[2] = r[2], r[1]
			return r
		}, "sorted by name"},
		{"user twice", func(r []*storagedump.Record) []*storagedump.Record {
			r[2].User.Name = "alice"
			return r
		}, "sorted by name"},
		{"message before a user", func(r []*storagedump.Record) []*storagedump.Record {
			r[2], r[3] = r[3], r[2]
			return r
		}, "out of order"},
		{"count differs", func(r []*storagedump.Record) []*storagedump.Record {
			r[len(r)-1].Trailer.Pending = 2
			return r
		}, "differ"},
		{"record lost", func(r []*storagedump.Record) []*storagedump.Record {
			return append(r[:4:4], r[5:]...)
		}, "differ"},
		{"group members count", func(r []*storagedump.Record) []*storagedump.Record {
			r[8].Group.Members = 2
			return r
		}, "members"},
		{"group last seq", func(r []*storagedump.Record) []*storagedump.Record {
			r[8].Group.LastSeq = 3
			return r
		}, "last_seq"},
		{"entry gap", func(r []*storagedump.Record) []*storagedump.Record {
			r[12].GroupEntry.Seq = 3
			r[8].Group.LastSeq = 3
			return r
		}, "seq order"},
		{"entry of another group", func(r []*storagedump.Record) []*storagedump.Record {
			r[12].GroupEntry.Group = 3
			return r
		}, "not after its group"},
		{"member after an entry", func(r []*storagedump.Record) []*storagedump.Record {
			r[10], r[11] = r[11], r[10]
			return r
		}, "out of order"},
		{"groups unsorted", func(r []*storagedump.Record) []*storagedump.Record {
			r[15].Group.ID = 1
			return r
		}, "sorted by id"},
		{"cursor beyond the log", func(r []*storagedump.Record) []*storagedump.Record {
			r[14].GroupCursor.ReadSeq = 9
			return r
		}, "outside the log"},
		{"after the trailer", func(r []*storagedump.Record) []*storagedump.Record {
			return append(r, &storagedump.Record{Token: &storagedump.Token{ID: "t2"}})
		}, "after the trailer"},
		{"second header", func(r []*storagedump.Record) []*storagedump.Record {
			return append(r[:2:2], append([]*storagedump.Record{r[0]}, r[2:]...)...)
		}, "second header"},
		{"two kinds in a record", func(r []*storagedump.Record) []*storagedump.Record {
			r[2].Friend = r[5].Friend
			return r
		}, "kinds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := tt.change(valid())
			var got records
			err := storagedump.Load(context.Background(), storagedump.NewDecoder(bytes.NewReader(encode(t, recs))), &got)
			if err == nil || !strings.Contains(err.Error(), tt.want) || got.sawTrailer {
				t.Errorf("Load = %v (trailer seen: %v), want an error with %q", err, got.sawTrailer, tt.want)
			}
			var copied records
			err = storagedump.Copy(context.Background(), &records{recs: tt.change(valid())}, &copied)
			if err == nil || copied.sawTrailer {
				t.Errorf("Copy = %v (trailer seen: %v), want an error", err, copied.sawTrailer)
			}
		})
	}
}

// TestCopyExportError: an export that fails after emitting its trailer
// (a failed read, say) fails the copy before the importer commits.
func TestCopyExportError(t *testing.T) {
	boom := errors.New("boom")
	var got records
	err := storagedump.Copy(context.Background(), &records{recs: valid(), exportErr: boom}, &got)
	if !errors.Is(err, boom) || got.sawTrailer {
		t.Errorf("Copy = %v (trailer seen: %v), want boom", err, got.sawTrailer)
	}
	// An importer that fails early stops the export (of more records
	// than Copy buffers).
	failing := importFunc(func(ctx context.Context, next func() (*storagedump.Record, error)) error {
		_, _ = next()
		return boom
	})
	if err := storagedump.Copy(context.Background(), &records{recs: bigDump(20000)}, failing); !errors.Is(err, boom) {
		t.Errorf("Copy into a failing importer = %v, want boom", err)
	}
}

type importFunc func(ctx context.Context, next func() (*storagedump.Record, error)) error

func (f importFunc) Import(ctx context.Context, next func() (*storagedump.Record, error)) error {
	return f(ctx, next)
}

// bigDump is a valid dump with n messages.
func bigDump(n int) []*storagedump.Record {
	recs := []*storagedump.Record{
		{Header: &storagedump.Header{Format: storagedump.Format}},
		{User: &storagedump.User{Name: "a"}},
	}
	for range n {
		recs = append(recs, &storagedump.Record{Message: &storagedump.Message{ID: "x", From: "a", To: "a"}})
	}
	return append(recs, &storagedump.Record{Trailer: &storagedump.Trailer{Users: 1, Messages: int64(n)}})
}

func TestDecoderErrors(t *testing.T) {
	header := `{"header":{"format":"qq-dump/1","source":"t","created":1}}` + "\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty input"},
		{"not json", "hello\n", "line 1: bad record"},
		{"not a header first", `{"user":{"name":"a","pw_hash":"","created":1}}` + "\n", "line 1: a user"},
		{"unknown field", header + `{"user":{"name":"a","pw_hash":"","created":1,"admin":true}}` + "\n", "line 2: bad record"},
		{"unknown kind", header + `{"spaceship":{}}` + "\n", "line 2: bad record"},
		{"no kind", header + `{}` + "\n", "line 2: bad record: 0 kinds"},
		{"two values", header + `{"user":{"name":"a"}} {"user":{"name":"b"}}` + "\n", "line 2: bad record: more than one"},
		{"too long", header + `{"msg":{"body":"` + strings.Repeat("x", storagedump.MaxLine) + `"}}` + "\n", "line 2: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := storagedump.NewDecoder(strings.NewReader(tt.in))
			var err error
			for err == nil {
				_, err = dec.Next()
			}
			if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Next = %v, want an error with %q", err, tt.want)
			}
		})
	}
	// A line just under the limit is read.
	line := `{"msg":{"id":"m","from":"a","to":"b","body":"` + strings.Repeat("x", storagedump.MaxLine-100) + `","ts":1,"status":"sent"}}`
	dec := storagedump.NewDecoder(strings.NewReader(header + line + "\n"))
	if _, err := dec.Next(); err != nil {
		t.Fatal(err)
	}
	if r, err := dec.Next(); err != nil || len(r.Message.Body) != storagedump.MaxLine-100 {
		t.Errorf("a long line: %v", err)
	}
}

func TestSummary(t *testing.T) {
	sum, err := storagedump.InspectDump(context.Background(), storagedump.NewDecoder(bytes.NewReader(encode(t, valid()))))
	if err != nil {
		t.Fatalf("InspectDump: %v", err)
	}
	want := storagedump.Summary{
		Source: "test", Created: 1, Counts: *valid()[len(valid())-1].Trailer,
		DeletedUsers: 1, MessagesWithCID: 1, MessagesSent: 1, BodyBytes: int64(len("hi\n\"x\"") + len("<&>")),
		FirstMessage: 10, LastMessage: 11, DissolvedGroups: 1, PastMembers: 1, GroupMessages: 1,
		LastGroupEntry: 21, MaxGroupID: 3,
	}
	if *sum != want {
		t.Errorf("InspectDump =\n%+v\nwant\n%+v", *sum, want)
	}
	sum2, err := storagedump.Inspect(context.Background(), &records{recs: valid()})
	if err != nil || *sum2 != want {
		t.Errorf("Inspect = %+v, %v", sum2, err)
	}
	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"users:            2 (1 live, 1 deleted)", "pending:          1", "tokens:           1", "first message:    1970-01-01T00:00:00.010Z"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("WriteText lacks %q:\n%s", s, text.String())
		}
	}
}

// FuzzDecoder: no input makes the Decoder panic or loop, and every record
// it returns has exactly one kind and survives an encode/decode round trip.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(`{"header":{"format":"qq-dump/1","source":"t","created":1}}` + "\n" + `{"user":{"name":"a","pw_hash":"","created":1}}`))
	f.Add(encode(f, valid()))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte(`{"header":{"format":"qq-dump/1"},"user":{}}`))
	f.Add([]byte(`{"header":{"format":"qq-dump/1"}}` + "\r\n" + `{"msg":{"body":"\u0000\ud800"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := storagedump.NewDecoder(bytes.NewReader(data))
		for i := 0; i < 1000; i++ {
			r, err := dec.Next()
			if err != nil {
				return
			}
			if r.Kind() == "empty" {
				t.Fatalf("record without a kind: %+v", r)
			}
			// Encoded again (after a header), it decodes to the same.
			again := storagedump.NewDecoder(bytes.NewReader(encode(t, []*storagedump.Record{valid()[0], r})))
			if _, err := again.Next(); err != nil {
				t.Fatal(err)
			}
			r2, err := again.Next()
			if err != nil {
				t.Fatalf("record %+v encoded again does not decode: %v", r, err)
			}
			if a, b := encode(t, []*storagedump.Record{r}), encode(t, []*storagedump.Record{r2}); !bytes.Equal(a, b) {
				t.Fatalf("record changed in a round trip:\n%s\n%s", a, b)
			}
		}
	})
}

package sqlitestore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// BenchmarkWrite measures group commits of batches of messages with cids.
func BenchmarkWrite(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		for _, n := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, n), func(b *testing.B) {
				s, _, _ := newStore(b, func(o *sqlitestore.Options) { o.Synchronous = sync })
				ctx := context.Background()
				msgs := make([]plugins.NewMessage, n)
				batch := &plugins.WriteBatch{Messages: msgs}
				for i := 0; b.Loop(); i++ {
					for j := range msgs {
						msgs[j] = nm("alice", "bob", "a message of moderate length, like most chat messages", fmt.Sprintf("%d-%d", i, j))
					}
					if _, err := s.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkWriteMixed is the shape of qqd's load: batches of messages with
// cids between random pairs of 1,000 users, each batch also acking the
// messages of the batch before it (every message is delivered and acked
// once), with fsync on commit.
func BenchmarkWriteMixed(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n, false) })
	}
}

// BenchmarkWriteMixedFriends is BenchmarkWriteMixed with the friends
// tables in use, as under direct_messages: friends: every user has 20
// friends and blocks 5 other users, and every message is FriendsOnly,
// between friends (so it passes both checks: the block probe and the
// friendship probe).
func BenchmarkWriteMixedFriends(b *testing.B) {
	for _, n := range []int{16, 128, 512} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchWriteMixed(b, n, true) })
	}
}

func benchWriteMixed(b *testing.B, n int, friends bool) {
	s := benchStore(b)
	// The rows go in with one statement each (the store keeps a
	// friendship as two rows).
	relate := func(friends, blocks [][2]string) error {
		var fr, bl strings.Builder
		for _, p := range friends {
			fmt.Fprintf(&fr, "('%s','%s',1),('%s','%s',1),", p[0], p[1], p[1], p[0])
		}
		for _, p := range blocks {
			fmt.Fprintf(&bl, "('%s','%s',1),", p[0], p[1])
		}
		for _, q := range []string{
			"INSERT INTO friends (owner, friend, since_ms) VALUES " + strings.TrimSuffix(fr.String(), ","),
			"INSERT INTO blocks (blocker, blocked, ts) VALUES " + strings.TrimSuffix(bl.String(), ","),
		} {
			if err := sqlitestore.WriterExec(s, q); err != nil {
				return err
			}
		}
		return nil
	}
	storagetest.WriteMixed(b, s, n, friends, relate)
}

// BenchDBEnv names an environment variable: a database file (of a stopped
// qqd, with users u0..u999) that BenchmarkWriteMixed copies and writes
// into instead of an empty one, to see how the cost grows with the data
// already stored. For example, after filling one with qqbench fill:
//
//	QQ_BENCH_DB=/tmp/fill/data/qq.db go test -run '^$' -bench WriteMixed ./plugins/sqlite/sqlitestore
const benchDBEnv = "QQ_BENCH_DB"

// benchStore opens a store on a copy of $QQ_BENCH_DB, or an empty one.
func benchStore(b *testing.B) *sqlitestore.Store {
	src := os.Getenv(benchDBEnv)
	if src == "" {
		s, _, _ := newStore(b)
		return s
	}
	dst := filepath.Join(b.TempDir(), "qq.db")
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return openAt(b, dst, nil)
}

// BenchmarkLookupCIDs measures the check qqd makes before filtering a
// batch: are these (sender, cid) pairs stored already? Almost all are new.
func BenchmarkLookupCIDs(b *testing.B) {
	s, _, _ := newStore(b)
	ctx := context.Background()
	for i := range 10 {
		msgs := make([]plugins.NewMessage, 500)
		for j := range msgs {
			msgs[j] = nm("alice", "bob", "stored", fmt.Sprintf("old-%d-%d", i, j))
		}
		write(b, s, &plugins.WriteBatch{Messages: msgs})
	}
	keys := make([]plugins.CIDKey, 512)
	for j := range keys {
		keys[j] = plugins.CIDKey{From: "alice", CID: fmt.Sprintf("new-%d", j)}
	}
	keys[0].CID = "old-3-7" // one retry
	// gRPC hands the plugin a cancelable context.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpu0 := storagetest.CPUTime(b)
	for b.Loop() {
		res, err := s.LookupCIDs(ctx, keys)
		if err != nil || !res[0].Duplicate || res[1].Duplicate {
			b.Fatal(err, res[0], res[1])
		}
	}
	b.ReportMetric(float64(storagetest.CPUTime(b)-cpu0)/float64(b.N*len(keys)), "cpu-ns/key")
}

// BenchmarkWriteGroupMessage measures storing group messages, in batches
// of 128 as under load, in a group of 10, 500 or 3,000 members, with
// fsync on commit. Every message has a cid (qqd gives each send one),
// every fourth mentions a member by name, and each batch carries one
// GroupAck per message (a member reading up to the last entry), as
// BenchmarkWriteMixed carries one Ack per message.
//
// With active=10, the senders, the mentioned and the readers are the
// same 10 members whatever the group's size: only the size changes, and
// cpu-ns/msg must not grow with it (a message costs one log row, the
// sender's cursor and the mentioned members' counters, never a row per
// member). With active=all they are drawn from every member, so a batch
// touches the cursors of up to 128 different senders and 128 readers
// (each on its own page of a large group) where a small group's batch
// touches the same few again: that costs more per message, up to a bound
// that a batch's size sets, not the group's.
func BenchmarkWriteGroupMessage(b *testing.B) {
	for _, members := range []int{10, 500, 3000} {
		b.Run(fmt.Sprintf("members=%d/active=10", members), func(b *testing.B) { benchWriteGroup(b, members, 10, 128) })
	}
	for _, members := range []int{500, 3000} {
		b.Run(fmt.Sprintf("members=%d/active=all", members), func(b *testing.B) { benchWriteGroup(b, members, members, 128) })
	}
}

// benchWriteGroup writes batches of n messages to a group of members,
// from (and read by) its first active members.
func benchWriteGroup(b *testing.B, members, active, n int) {
	path := filepath.Join(b.TempDir(), "qq.db")
	ctx := context.Background()
	name := func(u int) string { return fmt.Sprintf("u%d", u) }
	// Set up through the API, without fsync: one transaction per member.
	setup := openAt(b, path, nil, func(o *sqlitestore.Options) { o.Synchronous = "off" })
	var users strings.Builder
	for u := range members {
		fmt.Fprintf(&users, "('%s','hash',1),", name(u))
	}
	if err := sqlitestore.WriterExec(setup, "INSERT INTO users (name, pw_hash, created_ms) VALUES "+strings.TrimSuffix(users.String(), ",")); err != nil {
		b.Fatal(err)
	}
	g, err := setup.CreateGroup(ctx, name(0), "bench", plugins.PolicyInvite, plugins.HistoryJoined, 1, plugins.GroupLimits{})
	if err != nil {
		b.Fatal(err)
	}
	for u := 1; u < members; u++ {
		if _, err := setup.GroupOp(ctx, plugins.GroupOp{Kind: plugins.OpInvite, Group: g.ID, Actor: name(0), Target: name(u), TS: 2}); err != nil {
			b.Fatal(err)
		}
	}
	if err := setup.Close(); err != nil {
		b.Fatal(err)
	}

	s := openAt(b, path, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	run := time.Now().UnixNano()
	msgs := make([]plugins.NewGroupMessage, n)
	acks := make([]plugins.GroupAck, n)
	body := strings.Repeat("x", 100)
	lastSeq := int64(members)
	cpu0 := storagetest.CPUTime(b)
	for i := 0; b.Loop(); i++ {
		for j := range msgs {
			msgs[j] = plugins.NewGroupMessage{Group: g.ID, From: name(rng.IntN(active)), Body: body, CID: fmt.Sprintf("c%d-%d-%d", run, i, j)}
			if j%4 == 0 {
				msgs[j].Mentions = []string{name(rng.IntN(active))}
			}
			acks[j] = plugins.GroupAck{User: name(rng.IntN(active)), Group: g.ID, Seq: lastSeq}
		}
		res, err := s.Write(ctx, &plugins.WriteBatch{GroupMessages: msgs, GroupAcks: acks})
		if err != nil {
			b.Fatal(err)
		}
		for j, r := range res {
			if r.Err != nil || r.Duplicate || r.Group == nil {
				b.Fatalf("message %d: %+v", j, r)
			}
		}
		lastSeq = res[len(res)-1].Group.Seq
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(storagetest.CPUTime(b)-cpu0)/float64(b.N*n), "cpu-ns/msg")
}

// benchTokens opens a store (synchronous full, as by default) holding
// 10,000 tokens: 20 each for 500 users, the per-user limit qq.yaml ships
// with. It returns the store and the tokens' ids, shuffled.
func benchTokens(b *testing.B) (*sqlitestore.Store, []string) {
	const users, perUser = 500, 20
	path := filepath.Join(b.TempDir(), "qq.db")
	ctx := context.Background()
	// Set up through the API, without fsync.
	setup := openAt(b, path, nil, func(o *sqlitestore.Options) { o.Synchronous = "off" })
	ids := make([]string, 0, users*perUser)
	ms := t0.UnixMilli()
	for u := range users {
		name := fmt.Sprintf("u%d", u)
		if err := setup.CreateUser(ctx, name, "hash"); err != nil {
			b.Fatal(err)
		}
		for k := range perUser {
			id := fmt.Sprintf("%016x", u*perUser+k)
			hash := sha256.Sum256([]byte(id))
			t := plugins.Token{ID: id, User: name, Hash: hash[:], Created: ms, LastUsed: ms + int64(k), Expires: ms + 30*24*3600*1000}
			if err := setup.AddToken(ctx, t, perUser); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	if err := setup.Close(); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return openAt(b, path, nil), ids
}

// BenchmarkTokenLookup measures Token (what a resume costs the storage)
// by id among 10,000 stored tokens.
func BenchmarkTokenLookup(b *testing.B) {
	s, ids := benchTokens(b)
	// gRPC hands the plugin a cancelable context.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Token(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTouchTokens measures TouchTokens of a batch of 1,000 uses of
// random tokens among 10,000 (one op is one batch), with the writer at
// synchronous full (a touch commits without fsync).
func BenchmarkTouchTokens(b *testing.B) {
	const batch = 1000
	s, ids := benchTokens(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	uses := make([]plugins.TokenUse, batch)
	ts := t0.UnixMilli() + 1000
	cpu0 := storagetest.CPUTime(b)
	for i := 0; b.Loop(); i++ {
		for j := range uses {
			ts++
			uses[j] = plugins.TokenUse{ID: ids[(i*batch+j)%len(ids)], TS: ts}
		}
		if err := s.TouchTokens(ctx, uses); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/use")
	b.ReportMetric(float64(storagetest.CPUTime(b)-cpu0)/float64(b.N*batch), "cpu-ns/use")
}

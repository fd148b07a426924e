package pgstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/postgres/pgtest"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
	"github.com/qqchat/qq/plugins/storagedump"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func createUsers(t *testing.T, s plugins.Storage, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := s.CreateUser(testCtx(t), n, "h-"+n); err != nil {
			t.Fatalf("CreateUser(%q): %v", n, err)
		}
	}
}

func msg(from, to, body, cid string) plugins.NewMessage {
	return plugins.NewMessage{From: from, To: to, Body: body, CID: cid, Status: protocol.StatusQueued}
}

// checkSeqs requires the messages of each recipient, in seq order, to be
// numbered 1, 2, ... without a gap, and returns them by recipient.
func checkSeqs(t *testing.T, dsn string) map[string][]int64 {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(testCtx(t), `SELECT recipient, seq FROM messages ORDER BY recipient, seq`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int64{}
	for rows.Next() {
		var r string
		var seq int64
		if err := rows.Scan(&r, &seq); err != nil {
			t.Fatal(err)
		}
		got[r] = append(got[r], seq)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for r, seqs := range got {
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("seqs of %s = %v, want 1..%d", r, seqs, len(seqs))
			}
		}
	}
	var bad int
	if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM users u
		WHERE msg_seq != (SELECT coalesce(max(seq), 0) FROM messages WHERE recipient = u.name)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d users whose msg_seq is not their last message's seq", bad)
	}
	return got
}

// TestSeq checks the per-recipient seqs: from 1, without gaps (refused
// and duplicate messages take none, nor does a batch that rolled back),
// the same in every read.
func TestSeq(t *testing.T) {
	t.Parallel()
	dsn := pgtesting.NewDB(t, server)
	s := openTestStore(t, dsn)
	ctx := testCtx(t)
	createUsers(t, s, "alice", "bob", "carol")
	if err := s.Block(ctx, "carol", "bob", 1); err != nil {
		t.Fatal(err)
	}
	res, err := s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		msg("alice", "bob", "1", "c1"), msg("bob", "carol", "refused", ""), msg("alice", "bob", "2", ""),
		msg("alice", "bob", "dup", "c1"), msg("bob", "alice", "1", ""), msg("alice", "ghost", "x", ""),
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantSeq := []int64{1, 0, 2, 1, 1, 0}
	for i, r := range res {
		if r.Message.Seq != wantSeq[i] {
			t.Errorf("result %d: seq %d, want %d (%+v)", i, r.Message.Seq, wantSeq[i], r)
		}
	}
	// A batch cancelled midway stores nothing and takes no seq.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Write(cctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "lost", "")}}); err == nil {
		t.Fatal("Write with a cancelled context: no error")
	}
	res, err = s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("carol", "bob", "3", "")}})
	if err != nil || res[0].Message.Seq != 3 {
		t.Fatalf("Write = %+v, %v; want seq 3", res, err)
	}
	pend, _, err := s.Pending(ctx, "bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int64{pend[0].Seq, pend[1].Seq, pend[2].Seq}; !slices.Equal(got, []int64{1, 2, 3}) || len(pend) != 3 {
		t.Errorf("Pending(bob) seqs = %v, want [1 2 3]", got)
	}
	hist, _, err := s.History(ctx, "bob", "alice", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Seq == 0 {
			t.Errorf("History message without seq: %+v", m)
		}
	}
	look, err := s.LookupCIDs(ctx, []plugins.CIDKey{{From: "alice", CID: "c1"}})
	if err != nil || look[0].Message != pend[0] {
		t.Errorf("LookupCIDs = %+v, %v; want %+v", look, err, pend[0])
	}
	checkSeqs(t, dsn)

	// An import numbers the messages anew in the dump's order: the same
	// seqs.
	dst := openTestStore(t, pgtesting.NewDB(t, server))
	if err := storagedump.Copy(ctx, s, dst); err != nil {
		t.Fatal(err)
	}
	pend2, _, err := dst.Pending(ctx, "bob", 10)
	if err != nil || !slices.Equal(pend, pend2) {
		t.Errorf("Pending(bob) after an import = %+v, %v; want %+v", pend2, err, pend)
	}
	res, err = dst.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", "4", "")}})
	if err != nil || res[0].Message.Seq != 4 {
		t.Errorf("Write after an import = %+v, %v; want seq 4", res, err)
	}
}

// TestCIDRace races two stores (two pools, as two qqd nodes) writing the
// same cids at once: each key stores one message, and every Write that
// carries it answers with that message.
func TestCIDRace(t *testing.T) {
	t.Parallel()
	dsn := pgtesting.NewDB(t, server)
	stores := []*pgstore.Store{openTestStore(t, dsn), openTestStore(t, dsn)}
	users := []string{"u0", "u1", "u2", "u3"}
	createUsers(t, stores[0], users...)
	const keys, writers = 40, 6
	results := make([][]plugins.AppendResult, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			st := stores[w%2]
			r := rand.New(rand.NewPCG(uint64(w), 1))
			order := r.Perm(keys)
			got := make([]plugins.AppendResult, keys)
			for i := 0; i < len(order); i += 4 {
				var b plugins.WriteBatch
				idx := order[i:min(i+4, len(order))]
				for _, k := range idx {
					b.Messages = append(b.Messages, msg("u0", users[1+k%3], fmt.Sprintf("m%d", k), fmt.Sprintf("cid-%d", k)))
				}
				res, err := st.Write(testCtx(t), &b)
				if err != nil {
					t.Errorf("writer %d: Write: %v", w, err)
					return
				}
				for j, k := range idx {
					got[k] = res[j]
				}
			}
			results[w] = got
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for k := range keys {
		first := results[0][k].Message
		stored := 0
		for w := range writers {
			r := results[w][k]
			if r.Err != nil || r.Message != first {
				t.Errorf("key %d: writer %d got %+v, writer 0 %+v", k, w, r, first)
			}
			if !r.Duplicate {
				stored++
			}
		}
		if stored != 1 {
			t.Errorf("key %d stored by %d writers, want 1", k, stored)
		}
	}
	n, err := stores[1].CountPending(testCtx(t))
	if err != nil || n != keys {
		t.Errorf("CountPending = %d, %v; want %d", n, err, keys)
	}
	checkSeqs(t, dsn)
	if st := stores[0].PoolStats(); st.MaxConns != 8 || st.TotalConns < 1 || st.AcquireCount < 1 {
		t.Errorf("PoolStats = %+v, want max 8 (openTestStore's max_conns) and some use", st)
	}
}

// TestNoDeadlock runs many concurrent batches from two stores whose
// messages, acks and group messages name overlapping users and groups in
// random orders: all succeed (locks are taken in sorted order), and the
// seqs of every recipient and every group stay gap-free.
func TestNoDeadlock(t *testing.T) {
	t.Parallel()
	dsn := pgtesting.NewDB(t, server)
	stores := []*pgstore.Store{openTestStore(t, dsn), openTestStore(t, dsn)}
	var users []string
	for i := range 8 {
		users = append(users, fmt.Sprintf("user%d", i))
	}
	createUsers(t, stores[0], users...)
	var groups []int64
	for i := range 3 {
		g, err := stores[0].CreateGroup(testCtx(t), users[i], "g", plugins.PolicyOpen, plugins.HistoryShared, 1, plugins.GroupLimits{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if u != users[i] {
				if _, err := stores[0].GroupOp(testCtx(t), plugins.GroupOp{Kind: plugins.OpJoin, Group: g.ID, Actor: u, TS: 2}); err != nil {
					t.Fatal(err)
				}
			}
		}
		groups = append(groups, g.ID)
	}
	const workers, batches = 12, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			st := stores[w%2]
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range batches {
				var b plugins.WriteBatch
				for range 2 + r.IntN(6) {
					from, to := users[r.IntN(len(users))], users[r.IntN(len(users))]
					b.Messages = append(b.Messages, msg(from, to, "x", ""))
				}
				for range r.IntN(3) {
					g := groups[r.IntN(len(groups))]
					u := users[r.IntN(len(users))]
					b.GroupMessages = append(b.GroupMessages, plugins.NewGroupMessage{Group: g, From: u, Body: "y",
						Mentions: []string{users[r.IntN(len(users))]}})
				}
				for range r.IntN(3) {
					u := users[r.IntN(len(users))]
					p, _, err := st.Pending(testCtx(t), u, 2)
					if err != nil {
						t.Errorf("Pending: %v", err)
						return
					}
					if len(p) > 0 {
						b.Acks = append(b.Acks, plugins.Ack{User: u, MsgIDs: []string{p[0].ID}})
					}
					b.GroupAcks = append(b.GroupAcks, plugins.GroupAck{User: u, Group: groups[r.IntN(len(groups))], Seq: 5})
				}
				res, err := st.Write(testCtx(t), &b)
				if err != nil {
					t.Errorf("worker %d: Write: %v", w, err)
					return
				}
				for i, x := range res {
					if x.Err != nil {
						t.Errorf("worker %d: result %d: %v", w, i, x.Err)
					}
				}
			}
		})
	}
	wg.Wait()
	checkSeqs(t, dsn)
	conn, err := pgx.Connect(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var bad int
	if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM groups g
		WHERE g.last_seq != (SELECT count(*) FROM group_log l WHERE l.group_id = g.id)
		   OR g.last_seq != (SELECT max(seq) FROM group_log l WHERE l.group_id = g.id)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d groups whose log is not numbered 1..last_seq", bad)
	}
}

// TestMigrateConcurrently opens several stores on one empty database at
// once: the advisory lock lets one migrate, and all succeed.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dsn := pgtesting.NewDB(t, server)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() { openTestStore(t, dsn) })
	}
	wg.Wait()
	conn, err := pgx.Connect(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, v int
	if err := conn.QueryRow(testCtx(t), `SELECT count(*), max(version) FROM schema_version`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != 1 || v != 1 {
		t.Errorf("schema_version: %d rows, version %d; want 1 row, version 1", n, v)
	}
}

// TestServerRestart stops the PostgreSQL server under an open store: a
// Write during the outage fails with a WriteError that says nothing was
// stored, and once the server is back the same store writes again.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	pgtesting.Server(t, server) // skips without binaries
	srv, err := pgtest.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	dsn, err := srv.CreateDatabase(testCtx(t), "restart")
	if err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, dsn)
	createUsers(t, s, "alice", "bob")
	write := func(ctx context.Context, body string) ([]plugins.AppendResult, error) {
		return s.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{msg("alice", "bob", body, body)}})
	}
	if _, err := write(testCtx(t), "before"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	_, err = write(ctx, "during")
	cancel()
	var we *plugins.WriteError
	if !errors.As(err, &we) || we.MaybeWritten {
		t.Errorf("Write during the outage = %v, want a WriteError with MaybeWritten false", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The pool replaces its broken connections; a caller retries a
	// failed write, as qqd does.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := write(testCtx(t), "after")
		if err == nil {
			if res[0].Message.Seq != 2 {
				t.Errorf("Write after the restart = %+v, want seq 2", res[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Write after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p, _, err := s.Pending(testCtx(t), "bob", 10)
	if err != nil || len(p) != 2 {
		t.Errorf("Pending(bob) = %+v, %v; want before and after", p, err)
	}
}

// TestParseConfig checks the configuration keys.
func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := plugins.Env{DataDir: t.TempDir()}
	writeCACert(t, filepath.Join(env.DataDir, "ca.pem"))
	opts, err := pgstore.ParseConfig(env, []byte(`{"dsn":"postgres://qq@db.example:5433/qq","max_conns":7,"min_conns":2,
		"max_conn_lifetime":"30m","connect_timeout":"3s","statement_timeout":"2s",
		"sslmode":"verify-full","sslrootcert":"ca.pem","dedup_window":"1h"}`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	pc := opts.PoolConfig
	if pc.MaxConns != 7 || pc.MinConns != 2 || pc.MaxConnLifetime != 30*time.Minute || pc.ConnConfig.ConnectTimeout != 3*time.Second {
		t.Errorf("pool config = max %d min %d lifetime %v connect %v", pc.MaxConns, pc.MinConns, pc.MaxConnLifetime, pc.ConnConfig.ConnectTimeout)
	}
	if got := pc.ConnConfig.RuntimeParams["statement_timeout"]; got != "2000" {
		t.Errorf("statement_timeout = %q, want 2000", got)
	}
	if pc.ConnConfig.TLSConfig == nil || pc.ConnConfig.TLSConfig.ServerName != "db.example" || pc.ConnConfig.Port != 5433 {
		t.Errorf("TLS config = %+v, port %d; want verify-full for db.example:5433", pc.ConnConfig.TLSConfig, pc.ConnConfig.Port)
	}
	if opts.DedupWindow != time.Hour {
		t.Errorf("DedupWindow = %v", opts.DedupWindow)
	}
	if _, err := pgstore.ParseConfig(env, []byte(`{"dsn":"host=db user=qq dbname=qq","sslmode":"disable"}`)); err != nil {
		t.Errorf("ParseConfig of a keyword DSN: %v", err)
	}
	for _, bad := range []string{
		`{}`,
		`{"dsn":"postgres://x/y","bogus":1}`,
		`{"dsn":"postgres://x/y","sslmode":"sometimes"}`,
		`{"dsn":"postgres://x/y","statement_timeout":"soon"}`,
		`{"dsn":"postgres://x/y","max_conns":2,"min_conns":3}`,
		`{"dsn":"postgres://x:secret@[/y"}`,
		`{"dsn":"postgres://x:secret@h/y","sslmode":"verify-ca","sslrootcert":"missing.pem"}`,
	} {
		_, err := pgstore.ParseConfig(env, []byte(bad))
		if err == nil {
			t.Errorf("ParseConfig(%s): no error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseConfig(%s) = %v: shows the password", bad, err)
		}
	}
}

// writeCACert writes a self-signed CA certificate in PEM to path.
func writeCACert(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qq test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClockSkew writes one conversation alternately through two stores
// whose clocks are a minute apart (two nodes): History keeps the order of
// the writes, and timestamps never decrease along it.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	dsn := pgtesting.NewDB(t, server)
	open := func(skew time.Duration) *pgstore.Store {
		cfg := []byte(`{"dsn":"` + dsn + `","max_conns":2}`)
		opts, err := pgstore.ParseConfig(plugins.Env{DataDir: t.TempDir()}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		opts.Now = func() time.Time { return time.Now().Add(skew) }
		s, err := pgstore.Open(testCtx(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	ahead, behind := open(time.Minute), open(0)
	createUsers(t, ahead, "alice", "bob")
	var want []string
	for i := range 6 {
		st, from, to := ahead, "alice", "bob"
		if i%2 == 1 {
			st, from, to = behind, "bob", "alice"
		}
		res, err := st.Write(testCtx(t), &plugins.WriteBatch{Messages: []plugins.NewMessage{msg(from, to, fmt.Sprint(i), "")}})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res[0].Message.ID)
	}
	hist, _, err := behind.History(testCtx(t), "alice", "bob", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, m := range hist {
		got = append(got, m.ID)
		if i > 0 && m.TS < hist[i-1].TS {
			t.Errorf("timestamp %d decreases along the conversation: %d after %d", i, m.TS, hist[i-1].TS)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("History order = %v, want the order of the writes %v", got, want)
	}
}

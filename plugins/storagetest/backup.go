package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
)

// RunBackup checks st's plugins.Backup (found with plugins.BackupOf): a
// backup taken while writers keep writing holds every message whose Write
// returned before the backup was asked for, and the resume tokens and
// accounts stored before it; the copy, opened with openCopy (which
// arranges its own cleanup), reads and takes writes; the backup directory
// and its missing parent have mode 0700; a backup to an existing directory or to a relative path fails
// and leaves nothing. st must be empty and is left open.
//
// It is not part of Run, because opening the copy is the storage's own
// business: a storage plugin's tests call it with their store's Open.
func RunBackup(t *testing.T, st plugins.Storage, openCopy func(t *testing.T, dir string) plugins.Storage) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	b, ok := plugins.BackupOf(st)
	if !ok {
		t.Fatal("BackupOf = false")
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateUser(ctx, u, "hash-"+u); err != nil {
			t.Fatal(err)
		}
	}
	tk, hasTokens := plugins.TokensOf(st)
	token := plugins.Token{ID: "00000000000000b1", User: "alice", Hash: []byte{1, 2, 3}, Created: ts0, LastUsed: ts0, Expires: ts0 + 1}
	if hasTokens {
		if err := tk.AddToken(ctx, token, 10); err != nil {
			t.Fatal(err)
		}
	}

	// Writers run until the backup has returned; acked records the
	// messages whose Write returned, in order.
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, 2)
	)
	for w, from := range []string{"alice", "carol"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m := plugins.NewMessage{From: from, To: "bob", Body: fmt.Sprintf("w%d-%d", w, i), CID: fmt.Sprintf("w%d-%d", w, i), Status: protocol.StatusQueued}
				res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{m}})
				if err != nil || len(res) != 1 || res[0].Err != nil {
					errs <- fmt.Errorf("writer %s: write = %+v, %v", from, res, err)
					return
				}
				mu.Lock()
				acked = append(acked, res[0].Message.ID)
				mu.Unlock()
			}
		}()
	}
	// Let the writers get going, so that the backup runs among them.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 50 {
			break
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(time.Millisecond):
		}
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	dir := filepath.Join(t.TempDir(), "backups", "b1")
	err := b.Backup(ctx, dir)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}

	for _, p := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v; want a directory of mode 0700", p, err)
		}
	}
	cp := openCopy(t, dir)
	got := make(map[string]bool)
	for _, with := range []string{"alice", "carol"} {
		for _, id := range HistoryIDs(ctx, t, cp, "bob", with) {
			got[id] = true
		}
	}
	missing := 0
	for _, id := range before {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("the copy misses %d of the %d messages acked before the backup", missing, len(before))
	}
	if n, err := cp.PendingCount(ctx, "bob"); err != nil || n != int64(len(got)) {
		t.Errorf("PendingCount(bob) in the copy = %d, %v; want %d", n, err, len(got))
	}
	if h, err := cp.PasswordHash(ctx, "carol"); err != nil || h != "hash-carol" {
		t.Errorf("PasswordHash(carol) in the copy = %q, %v", h, err)
	}
	if hasTokens {
		ctk, ok := plugins.TokensOf(cp)
		if !ok {
			t.Error("the copy has no Tokens")
		} else if got, err := ctk.Token(ctx, token.ID); err != nil || string(got.Hash) != string(token.Hash) {
			t.Errorf("Token in the copy = %+v, %v", got, err)
		}
	}
	res, err := cp.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{{From: "bob", To: "alice", Body: "to the copy", Status: protocol.StatusQueued}}})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Errorf("Write to the copy = %+v, %v", res, err)
	}
	if err := cp.CreateUser(ctx, "dave", "h"); err != nil {
		t.Errorf("CreateUser in the copy: %v", err)
	}
	if err := b.Backup(ctx, dir); err == nil || !errors.Is(err, fs.ErrExist) && !strings.Contains(err.Error(), "exists") {
		t.Errorf("Backup to an existing directory = %v, want an error saying it exists", err)
	}
	rel := filepath.Join("storagetest-relative", "b")
	if err := b.Backup(ctx, rel); err == nil {
		t.Error("Backup to a relative directory succeeded")
	}
	if _, err := os.Stat("storagetest-relative"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the relative backup left a directory behind: %v", err)
		os.RemoveAll("storagetest-relative")
	}
}

// HistoryIDs returns the ids of the whole conversation of user and with
// in st, newest first, paging back with History.
func HistoryIDs(ctx context.Context, t *testing.T, st plugins.Storage, user, with string) []string {
	t.Helper()
	var ids []string
	before := ""
	for {
		msgs, more, err := st.History(ctx, user, with, before, 500)
		if err != nil {
			t.Fatalf("History(%s, %s): %v", user, with, err)
		}
		for i := len(msgs) - 1; i >= 0; i-- {
			ids = append(ids, msgs[i].ID)
		}
		if !more || len(msgs) == 0 {
			return ids
		}
		before = msgs[0].ID
	}
}

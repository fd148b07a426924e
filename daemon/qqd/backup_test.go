package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/admin"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/storagetest"
)

// backupTestStorage is the factory of the test storage plugins of the
// backup tests, both sqlitestore underneath: "nobackupstore" has no
// Backup (a storage plugin that cannot make backups), and
// "heldbackupstore" holds each backup, once it has begun, until a file
// named <dir>.release appears (it creates <dir>.started first).
func backupTestStorage(name string) plugins.StorageFactory {
	return func(env plugins.Env, config []byte) (plugins.Storage, error) {
		st, err := sqlitestore.New(env, config)
		if err != nil {
			return nil, err
		}
		if name == "nobackupstore" {
			return noBackupStorage{st}, nil
		}
		return heldBackupStorage{noBackupStorage{st}, st.(*sqlitestore.Store)}, nil
	}
}

// noBackupStorage keeps everything of the storage it wraps except Backup.
type noBackupStorage struct{ plugins.Storage }

func (s noBackupStorage) Social() (plugins.Social, bool) { return plugins.SocialOf(s.Storage) }
func (s noBackupStorage) Groups() (plugins.Groups, bool) { return plugins.GroupsOf(s.Storage) }
func (s noBackupStorage) Tokens() (plugins.Tokens, bool) { return plugins.TokensOf(s.Storage) }

// heldBackupStorage is sqlitestore with each backup held (see
// backupTestStorage).
type heldBackupStorage struct {
	noBackupStorage
	st *sqlitestore.Store
}

func (s heldBackupStorage) Backup(ctx context.Context, dir string) error {
	if err := os.WriteFile(dir+".started", nil, 0o600); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(dir + ".release"); err == nil {
			return s.st.Backup(ctx, dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// dialQQDAdmin returns an admin Client of the qqd running on dir.
func dialQQDAdmin(t *testing.T, dir string) *admin.Client {
	t.Helper()
	adm, err := admin.Dial(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adm.Close() })
	return adm
}

// TestBackupOnline runs qqd with each built-in storage as a plugin
// process, clients sending over TCP, and `qqadmin backup` in the middle:
// the copy, opened with the storage's own package after qqd stopped,
// holds every message acknowledged (ok) before the backup was asked for,
// and takes writes.
func TestBackupOnline(t *testing.T) {
	for _, tt := range []struct {
		name    string
		storage string // qq.yaml
		open    func(t *testing.T, dir string) plugins.Storage
	}{
		{"sqlite", "storage: {plugin: sqlite}\n", func(t *testing.T, dir string) plugins.Storage {
			fi, err := os.Stat(filepath.Join(dir, "qq.db"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("the copy's qq.db: %v, %v; want mode 0600", fi, err)
			}
			s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Path: filepath.Join(dir, "qq.db")})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"pebble", "storage: {plugin: pebble, config: {cache_mb: 8, memtable_mb: 4}}\n", func(t *testing.T, dir string) plugins.Storage {
			s, err := pebblestore.Open(context.Background(), pebblestore.Options{Path: dir, CacheSize: 8 << 20, MemTableSize: 4 << 20})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := startQQD(t, dir, "-config", writeConfig(t, dir, "filters: []\n"+loadLimitsYAML+tt.storage))
			if pids := pluginPIDs(t, p.cmd.Process.Pid); pids[tt.name] == 0 {
				t.Fatalf("storage %s is not a subprocess of qqd (children: %v)", tt.name, pids)
			}
			adm := dialQQDAdmin(t, dir)
			stop := make(chan struct{})
			load := startLoad(t, p.addr, 6, stop)
			// Wait for some traffic, then take what was acked so far.
			deadline := time.Now().Add(daemontest.Timeout)
			var before map[string][]string
			for n := 0; n < 200; {
				if time.Now().After(deadline) {
					t.Fatalf("only %d sends acknowledged", n)
				}
				time.Sleep(10 * time.Millisecond)
				load.mu.Lock()
				n = 0
				before = map[string][]string{}
				for to, ids := range load.acked {
					n += len(ids)
					before[to] = append([]string(nil), ids...)
				}
				load.mu.Unlock()
			}
			backupDir := filepath.Join(dir, "backup", "b1")
			r, err := adm.Backup(adminCtx(t), backupDir)
			if err != nil {
				close(stop)
				t.Fatalf("Backup: %v", err)
			}
			// The sends go on after the backup too.
			load.mu.Lock()
			atBackup := 0
			for _, ids := range load.acked {
				atBackup += len(ids)
			}
			load.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			close(stop)
			load.wg.Wait()
			if r.Dir != backupDir || r.Bytes <= 0 || r.Files <= 0 || r.DurationMS < 0 {
				t.Errorf("Backup = %+v", r)
			}
			p.waitLog(t, `msg="storage backup done" dir=`+strings.ReplaceAll(backupDir, ".", `\.`))
			if p.logged("cannot extend the write deadline") {
				t.Error("the admin server could not give the backup's reply its longer write deadline")
			}
			total := load.checkHistory(t, p.addr) // qqd itself lost nothing either
			t.Logf("%d sends acknowledged before the backup, %d when it returned, %d in all", ackedCount(before), atBackup, total)
			if err := p.signal(t, syscall.SIGTERM); err != nil {
				t.Fatalf("qqd exit: %v", err)
			}

			for _, d := range []string{backupDir, filepath.Dir(backupDir)} {
				if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: %v, %v; want a directory of mode 0700", d, fi, err)
				}
			}
			cp := tt.open(t, backupDir)
			defer cp.Close()
			ctx := adminCtx(t)
			for to, ids := range before {
				var n int
				fmt.Sscanf(to, "load%d", &n)
				from := fmt.Sprintf("load%d", (n+load.n-1)%load.n)
				have := map[string]bool{}
				for _, id := range storagetest.HistoryIDs(ctx, t, cp, to, from) {
					have[id] = true
				}
				for _, id := range ids {
					if !have[id] {
						t.Errorf("message %s to %s, acknowledged before the backup, is not in the copy", id, to)
					}
				}
			}
			res, err := cp.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
				{From: "load0", To: "load1", Body: "written to the copy", Status: protocol.StatusQueued},
			}})
			if err != nil || len(res) != 1 || res[0].Err != nil {
				t.Errorf("Write to the copy = %+v, %v", res, err)
			}
			if err := cp.CreateUser(ctx, "newcomer", "h"); err != nil {
				t.Errorf("CreateUser in the copy: %v", err)
			}
		})
	}
}

// ackedCount is how many messages acked holds.
func ackedCount(acked map[string][]string) (n int) {
	for _, ids := range acked {
		n += len(ids)
	}
	return n
}

// TestBackupRefused: what `qqadmin backup` refuses, against a running qqd
// with real plugin processes: a relative directory, an existing one, a
// second backup while one runs (busy), and any backup with a storage
// plugin that cannot make them. None of them creates anything.
func TestBackupRefused(t *testing.T) {
	t.Run("held", func(t *testing.T) {
		dir := t.TempDir()
		p := startQQD(t, dir, "-config", writeConfig(t, dir, fmt.Sprintf(
			"filters: []\nstorage: {command: [%q, test-plugin, heldbackupstore], config: {path: qq.db}}\n", os.Args[0])))
		adm := dialQQDAdmin(t, dir)
		ctx := adminCtx(t)
		if _, err := adm.Backup(ctx, "backup/b1"); !errors.Is(err, admin.ErrInvalid) || !strings.Contains(err.Error(), "not an absolute path") {
			t.Errorf("Backup(relative) = %v, want ErrInvalid", err)
		}
		existing := filepath.Join(dir, "exists")
		if err := os.Mkdir(existing, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.Backup(ctx, existing); !errors.Is(err, admin.ErrBackupExists) {
			t.Errorf("Backup(existing) = %v, want ErrBackupExists", err)
		}

		first := filepath.Join(dir, "b1")
		done := make(chan error, 1)
		go func() {
			_, err := adm.Backup(ctx, first)
			done <- err
		}()
		deadline := time.Now().Add(daemontest.Timeout)
		for {
			if _, err := os.Stat(first + ".started"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first backup never started")
			}
			time.Sleep(10 * time.Millisecond)
		}
		second := filepath.Join(dir, "b2")
		if _, err := adm.Backup(ctx, second); !errors.Is(err, admin.ErrBackupBusy) {
			t.Errorf("Backup during another = %v, want ErrBackupBusy", err)
		}
		if _, err := os.Stat(second + ".started"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the refused backup reached the storage: %v", err)
		}
		if err := os.WriteFile(first+".release", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the held backup: %v", err)
		}
		if _, err := os.Stat(filepath.Join(first, "qq.db")); err != nil {
			t.Errorf("the held backup wrote no copy: %v", err)
		}
		// Once it is done, the next one runs.
		if err := os.WriteFile(second+".release", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := adm.Backup(ctx, second); err != nil {
			t.Errorf("Backup after the first one: %v", err)
		}
		if err := p.signal(t, syscall.SIGTERM); err != nil {
			t.Fatalf("qqd exit: %v", err)
		}
	})

	// A storage plugin of protocol version 3 (built before Backup; its
	// storage is sqlitestore, which could), and one of version 4 whose
	// storage cannot make backups.
	for _, plugin := range []string{"v3store", "nobackupstore"} {
		t.Run("unsupported "+plugin, func(t *testing.T) {
			dir := t.TempDir()
			p := startQQD(t, dir, "-config", writeConfig(t, dir, fmt.Sprintf(
				"filters: []\nstorage: {command: [%q, test-plugin, %s], config: {path: qq.db}}\n", os.Args[0], plugin)))
			adm := dialQQDAdmin(t, dir)
			b := filepath.Join(dir, "b1")
			_, err := adm.Backup(adminCtx(t), b)
			if !errors.Is(err, admin.ErrBackupUnsupported) || err.Error() != "backup not supported by this storage plugin" {
				t.Errorf("Backup = %v, want %q", err, "backup not supported by this storage plugin")
			}
			if _, err := os.Stat(b); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the refused backup made %s: %v", b, err)
			}
			// The plugin serves otherwise.
			c := dialClient(t, p.addr, "alice")
			if _, err := c.Send(t.Context(), "alice", "note to self"); err != nil {
				t.Errorf("send with the %s plugin: %v", plugin, err)
			}
		})
	}
}

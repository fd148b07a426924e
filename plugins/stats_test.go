package plugins_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qqchat/qq/plugins"
)

// checkStats checks that st's Stats (found with StatsOf) reports the test
// storage's pool.
func checkStats(t *testing.T, st plugins.Storage) {
	t.Helper()
	s, ok := plugins.StatsOf(st)
	if !ok {
		t.Fatal("StatsOf = false")
	}
	r, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if r.Pool == nil || *r.Pool != testPoolStats() {
		t.Errorf("Stats().Pool = %+v, want %+v", r.Pool, testPoolStats())
	}
}

// TestStatsVersions: a storage plugin of this package (version 5) reports
// its Stats over gRPC; one built before Stats (versions up to 4) starts
// and works without them, and so does this package's plugin under a host
// that knows versions 1 to 4 only. In this process, a storage has Stats
// when it implements them (sqlitestore does not).
func TestStatsVersions(t *testing.T) {
	for _, tt := range []struct {
		serve       string
		wantVersion int
	}{
		{"storage", 5},
		{"storage-v4", 4},
		{"storage-v1", 1},
	} {
		t.Run(tt.serve, func(t *testing.T) {
			p := startStorageServing(t, tt.serve, tt.wantVersion)
			if tt.wantVersion >= 5 {
				checkStats(t, p.Storage())
				return
			}
			if _, ok := plugins.StatsOf(p.Storage()); ok {
				t.Errorf("StatsOf = true at version %d", tt.wantVersion)
			}
			if _, err := p.Storage().CountUsers(t.Context()); err != nil {
				t.Errorf("CountUsers at version %d: %v", tt.wantVersion, err)
			}
		})
	}

	t.Run("under a version 4 host", func(t *testing.T) {
		st := storageUnderHost(t, 4)
		if _, ok := plugins.StatsOf(st); ok {
			t.Error("StatsOf = true at version 4")
		}
		if _, ok := plugins.BackupOf(st); !ok {
			t.Error("BackupOf = false at version 4")
		}
	})

	t.Run("in process without Stats", func(t *testing.T) {
		env, cfg := sqliteConfig(t, "normal")
		st, err := newTestStorage(env, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		checkStats(t, st) // faultStorage has Stats
		if _, ok := plugins.StatsOf(st.(faultStorage).Storage); ok {
			t.Error("StatsOf(sqlitestore) = true")
		}
	})
}

// TestSuperviseStatsAcrossRestarts: StatsOf on a supervised storage
// follows the process in service; a Stats obtained earlier fails with
// ErrPluginDown while an older plugin binary runs, and works again after
// a restart with a new one.
func TestSuperviseStatsAcrossRestarts(t *testing.T) {
	env, cfg := sqliteConfig(t, "normal")
	s := supervise(t, plugins.KindStorage, cfg, env)
	st := s.Storage()
	checkStats(t, st)
	stats, _ := plugins.StatsOf(st)
	restart := func(serve string) {
		t.Helper()
		t.Setenv(envServe, serve)
		before := s.Status()
		syscall.Kill(before.Pid, syscall.SIGKILL)
		if !eventually(10*time.Second, func() bool { st := s.Status(); return st.Up && st.Pid != before.Pid }) {
			t.Fatalf("not restarted: %+v", s.Status())
		}
	}
	restart("storage-v4")
	if _, ok := plugins.StatsOf(st); ok {
		t.Error("StatsOf = true after a restart with a version 4 plugin")
	}
	if _, err := stats.Stats(context.Background()); !errors.Is(err, plugins.ErrPluginDown) || !strings.Contains(err.Error(), "protocol version 4") {
		t.Errorf("Stats on a version 4 process = %v, want ErrPluginDown naming version 4", err)
	}
	restart("storage")
	checkStats(t, st)
	if _, err := stats.Stats(context.Background()); err != nil {
		t.Errorf("Stats after the restart: %v", err)
	}
}

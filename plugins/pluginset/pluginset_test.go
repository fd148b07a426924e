package pluginset_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/antispam/antispam"
	"github.com/qqchat/qq/plugins/pebble/pebblestore"
	"github.com/qqchat/qq/plugins/pluginset"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
	"github.com/qqchat/qq/plugins/wordfilter/wordfilter"
)

// builtins are qqd's built-in plugins (daemon/qqd lists them the same).
func builtins() pluginset.Builtins {
	return pluginset.Builtins{
		Storages: map[string]plugins.StorageFactory{"sqlite": sqlitestore.New, "pebble": pebblestore.New},
		Filters:  map[string]plugins.FilterFactory{"wordfilter": wordfilter.New, "antispam": antispam.New},
	}
}

// TestMain lets the test binary serve the built-in plugins, as qqd does:
// "<binary> plugin <name>".
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "plugin" {
		if err := builtins().Serve(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(daemontest.RunWithPrivateTmp(m))
}

// benchConfig is the default configuration with antispam's limits lifted,
// so that the load generator is not taken for a spammer.
func benchConfig(tb testing.TB, inProcess bool) *config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	daemontest.Unlimited(cfg) // 64 users from one address: past the per-IP connection limit
	cfg.Plugins.InProcess = inProcess
	cfg.Filters[0].Config = map[string]any{
		"flood":  map[string]any{"max_messages": 10000, "window": "1s"},
		"repeat": map[string]any{"max_same_body": 10000, "max_recipients": 10000, "window": "1s"},
	}
	return cfg
}

func startSet(tb testing.TB, cfg *config.Config) *pluginset.Set {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	set, err := pluginset.Start(context.Background(), cfg, pluginset.Options{Builtins: builtins(), Self: self})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(set.Close)
	return set
}

// BenchmarkPlugins compares send throughput through the default storage
// (pebble, fsync on every write) and filter chain (antispam, wordfilter) run as
// subprocesses over gRPC against the same plugins called in process, over
// real TCP: 64 users keep 32 sends each in flight (enough to saturate
// either), every push is read. Both servers run side by side and take
// turns, four rounds each, so that machine noise hits both alike; the
// reported figures are the totals over the rounds and their ratio.
func BenchmarkPlugins(b *testing.B) {
	const users, window, rounds = 64, 32, 4
	type setup struct {
		addr    string
		sent    int
		elapsed float64
	}
	var setups [2]*setup // in process, out of process
	for i, inProcess := range []bool{true, false} {
		cfg := benchConfig(b, inProcess)
		set := startSet(b, cfg)
		s := daemontest.StartWithPlugins(b, cfg, set.Storage(), set.Filters())
		s.Users(b, users)
		setups[i] = &setup{addr: s.Addr}
	}
	b.ResetTimer()
	per := max(users*window, b.N/(2*rounds))
	for range rounds {
		for _, st := range setups {
			r := daemontest.SendLoad(b, st.addr, users, window, per)
			st.sent += r.Sent
			st.elapsed += r.Elapsed.Seconds()
		}
	}
	b.StopTimer()
	in := float64(setups[0].sent) / setups[0].elapsed
	out := float64(setups[1].sent) / setups[1].elapsed
	b.ReportMetric(in, "in_process_msgs/s")
	b.ReportMetric(out, "out_of_process_msgs/s")
	b.ReportMetric(100*out/in, "out/in_%")
}

// TestStartInAndOutOfProcess checks both ways of running the default
// plugins end to end, and that Close stops the subprocesses.
func TestStartInAndOutOfProcess(t *testing.T) {
	for _, inProcess := range []bool{true, false} {
		t.Run(fmt.Sprint("in_process=", inProcess), func(t *testing.T) {
			cfg := benchConfig(t, inProcess)
			set := startSet(t, cfg)
			if got := len(set.Statuses()); inProcess && got != 0 || !inProcess && got != 3 {
				t.Fatalf("%d supervised processes", got)
			}
			s := daemontest.StartWithPlugins(t, cfg, set.Storage(), set.Filters())
			s.Users(t, 2)
			if r := daemontest.SendLoad(t, s.Addr, 2, 4, 100); r.Sent != 100 {
				t.Fatalf("sent %d", r.Sent)
			}
		})
	}
}

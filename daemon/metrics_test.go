package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

func fakeStatuses() []plugins.Status {
	return []plugins.Status{
		{Name: "sqlite", Kind: plugins.KindStorage, Up: true, Restarts: 2},
		{Name: "wordfilter", Kind: plugins.KindFilter, Up: false, Restarts: 5},
	}
}

// TestMetricsLint registers everything qqd registers and lints it.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		daemon.PluginCollector(fakeStatuses),
	)
	cfg := daemontest.Config(t)
	daemontest.StartDeps(t, cfg, daemon.Deps{
		Registry: reg,
		Filters:  []plugins.FilterLink{{Name: "words", Filter: rejectFilter("spam", "no")}},
	})
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// The storage gauges were collected (and so linted) too.
	for _, name := range []string{"qqd_pending_messages", "qqd_accounts", "qqd_storage_scrape_errors_total"} {
		if got := daemontest.MetricValue(t, reg, name); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "qqd_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s has no qqd_ prefix", name)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "version", "goversion", "reason", "result", "plugin", "method":
				default:
					if strings.HasPrefix(name, "qqd_") {
						t.Errorf("metric %s has label %s outside the closed sets", name, l.GetName())
					}
				}
			}
		}
	}
}

// TestNewRegisterTwice: a second server on the same registry is refused.
func TestNewRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := daemontest.Config(t)
	s := daemontest.StartDeps(t, cfg, daemon.Deps{Registry: reg})
	if _, err := daemon.New(cfg, daemon.Deps{Storage: s.Store, Registry: reg, PasswordParams: &daemontest.FastPasswords}); err == nil {
		t.Fatal("New with an already used registry succeeded")
	}
}

// overlapStore is the SQLite store made a plugins.WriteOverlapper, as a
// storage plugin's client is, to check the pipeline still sees it through
// the metrics decorator.
type overlapStore struct {
	plugins.Storage
	started atomic.Int64
}

func (o *overlapStore) WriteOverlap() int { return 2 }

func (o *overlapStore) StartWrite(ctx context.Context, b *plugins.WriteBatch) func() ([]plugins.AppendResult, error) {
	o.started.Add(1)
	done := make(chan struct{})
	var res []plugins.AppendResult
	var err error
	go func() { res, err = o.Storage.Write(ctx, b); close(done) }()
	return func() ([]plugins.AppendResult, error) { <-done; return res, err }
}

// TestMetricsTraffic runs real traffic over TCP and checks that the
// metrics move.
func TestMetricsTraffic(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := daemontest.Config(t)
	cfg.Limits.MaxFrameBytes = 8192
	cfg.Limits.MaxBodyBytes = 4096
	sq := daemontest.OpenStore(t, cfg)
	st := &overlapStore{Storage: sq}
	s := daemontest.StartDeps(t, cfg, daemon.Deps{
		Storage:  st,
		Registry: reg,
		Filters:  []plugins.FilterLink{{Name: "words", Filter: rejectFilter("spam", "no spam")}},
		Version:  "1.2.3",
	})
	val := func(name string, labels ...string) float64 {
		t.Helper()
		return daemontest.MetricValue(t, reg, name, labels...)
	}

	if got := val("qqd_build_info", "version", "1.2.3"); got != 1 {
		t.Errorf("qqd_build_info{version=1.2.3} = %v, want 1", got)
	}
	for _, r := range daemon.CloseReasons() {
		if got := val("qqd_connections_closed_total", "reason", r.String()); got != 0 {
			t.Errorf("qqd_connections_closed_total{reason=%s} = %v, want 0", r, got)
		}
	}

	// carol is registered, then goes away: messages to her are queued.
	carol := s.Dial(t)
	carol.Register("carol", "password1")
	carol.Send(`{"type":"register","id":"r2","user":"carol","password":"password1"}`)
	carol.Expect(`{"type":"error","id":"r2","code":"user_exists"}`)
	carol.Send(`{"type":"register","id":"r3","user":"-bad-","password":"password1"}`)
	carol.Expect(`{"type":"error","id":"r3","code":"bad_request"}`)
	carol.Send(`{"type":"login","id":"l1","user":"carol","password":"wrong-password"}`)
	carol.Expect(`{"type":"error","id":"l1","code":"auth_failed"}`)
	carol.C.Close()
	daemontest.WaitMetric(t, reg, 1, "qqd_connections_closed_total", "reason", "client_quit")

	alice := s.User(t, "alice")
	bob := s.User(t, "bob")
	alice.Send(`{"type":"login","id":"l2","user":"alice","password":"password1"}`)
	alice.Expect(`{"type":"error","id":"l2","code":"already_logged_in"}`)

	alice.Send(`{"type":"send","id":1,"to":"bob","body":"hi"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"sent"}`)
	bob.Expect(`{"type":"msg","body":"hi"}`)
	alice.Send(`{"type":"send","id":2,"to":"carol","body":"later"}`)
	alice.Expect(`{"type":"ok","id":2,"status":"queued"}`)
	alice.Send(`{"type":"send","id":3,"to":"bob","body":"buy spam"}`)
	alice.Expect(`{"type":"error","id":3,"code":"rejected"}`)
	alice.Send(`{"type":"send","id":4,"to":"nobody","body":"hello?"}`)
	alice.Expect(`{"type":"error","id":4,"code":"unknown_user"}`)
	alice.Send(`{"type":"send","id":5,"to":"carol","body":"once","cid":"c1"}`)
	alice.Expect(`{"type":"ok","id":5}`)
	alice.Send(`{"type":"send","id":6,"to":"carol","body":"once","cid":"c1"}`)
	alice.Expect(`{"type":"ok","id":6}`)
	alice.Send(`{"type":"send","id":7,"to":"bob","body":""}`)
	alice.Expect(`{"type":"error","id":7,"code":"bad_request"}`)
	alice.Send(fmt.Sprintf(`{"type":"send","id":8,"to":"bob","body":%q}`, strings.Repeat("x", 5000)))
	alice.Expect(`{"type":"error","id":8,"code":"too_large"}`)

	wantMsgs := map[string]float64{"sent": 1, "queued": 2, "rejected": 1, "unknown_user": 1, "duplicate": 1,
		"invalid": 2, "filter_failed": 0, "failed": 0}
	var piped float64
	for result, want := range wantMsgs {
		if got := val("qqd_messages_total", "result", result); got != want {
			t.Errorf("qqd_messages_total{result=%s} = %v, want %v", result, got, want)
		}
		if result != "invalid" {
			piped += want
		}
	}
	if got := val("qqd_send_duration_seconds"); got != piped {
		t.Errorf("qqd_send_duration_seconds count = %v, want %v", got, piped)
	}
	wantLogins := map[string]float64{"ok": 2, "auth_failed": 1, "already_logged_in": 1, "invalid": 0, "error": 0}
	for result, want := range wantLogins {
		if got := val("qqd_logins_total", "result", result); got != want {
			t.Errorf("qqd_logins_total{result=%s} = %v, want %v", result, got, want)
		}
	}
	// carol, alice and bob registered; carol's second try and the bad name failed.
	wantRegs := map[string]float64{"ok": 3, "exists": 1, "invalid": 1, "closed": 0, "error": 0}
	for result, want := range wantRegs {
		if got := val("qqd_registrations_total", "result", result); got != want {
			t.Errorf("qqd_registrations_total{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := val("qqd_users_online"); got != 2 {
		t.Errorf("qqd_users_online = %v, want 2", got)
	}
	if got := val("qqd_connections_open"); got != 2 {
		t.Errorf("qqd_connections_open = %v, want 2", got)
	}
	if got := val("qqd_connections_accepted_total"); got != 3 {
		t.Errorf("qqd_connections_accepted_total = %v, want 3", got)
	}
	if got := val("qqd_pushes_total"); got != 1 {
		t.Errorf("qqd_pushes_total = %v, want 1", got)
	}
	if got := val("qqd_received_bytes_total"); got < 500 {
		t.Errorf("qqd_received_bytes_total = %v, want at least 500", got)
	}
	if got := val("qqd_sent_bytes_total"); got < 500 {
		t.Errorf("qqd_sent_bytes_total = %v, want at least 500", got)
	}

	// Plugin calls: the Write went through StartWrite (overlap kept), and
	// is timed once per batch.
	writes := val("qqd_plugin_call_duration_seconds", "plugin", "storage", "method", "Write")
	if writes < 1 || writes != float64(st.started.Load()) {
		t.Errorf("Write calls timed = %v, StartWrite calls = %d; want equal and > 0", writes, st.started.Load())
	}
	if got := val("qqd_storage_batch_messages"); got != writes {
		t.Errorf("qqd_storage_batch_messages count = %v, want %v (one per Write)", got, writes)
	}
	// 3 logins (already_logged_in asks no storage) and the 4 registrations
	// with a valid name, each first looking the name up.
	if got := val("qqd_plugin_call_duration_seconds", "plugin", "storage", "method", "PasswordHash"); got != 7 {
		t.Errorf("PasswordHash calls = %v, want 7", got)
	}
	// carol's second try was answered user_exists after the lookup.
	if got := val("qqd_plugin_call_duration_seconds", "plugin", "storage", "method", "CreateUser"); got != 3 {
		t.Errorf("CreateUser calls = %v, want 3", got)
	}
	// 3 registrations hashed, 3 logins verified.
	if got := val("qqd_password_hashes_total"); got != 6 {
		t.Errorf("qqd_password_hashes_total = %v, want 6", got)
	}
	if got := val("qqd_plugin_call_duration_seconds", "plugin", "storage", "method", "LookupCIDs"); got != 2 {
		t.Errorf("LookupCIDs calls = %v, want 2", got)
	}
	if got := val("qqd_plugin_call_duration_seconds", "plugin", "words", "method", "Filter"); got < 1 {
		t.Errorf("filter calls = %v, want at least 1", got)
	}
	// Answers such as user_exists and unknown user are not plugin errors.
	for _, m := range []string{"CreateUser", "PasswordHash", "Write", "Filter"} {
		plugin := "storage"
		if m == "Filter" {
			plugin = "words"
		}
		if got := val("qqd_plugin_call_errors_total", "plugin", plugin, "method", m); got != 0 {
			t.Errorf("qqd_plugin_call_errors_total{plugin=%s,method=%s} = %v, want 0", plugin, m, got)
		}
	}

	// Closes by reason.
	bob.Send(`{"type":"logout","id":"bye"}`)
	bob.Expect(`{"type":"ok","id":"bye"}`)
	daemontest.WaitMetric(t, reg, 1, "qqd_connections_closed_total", "reason", "logout")
	alice.SendRaw([]byte(strings.Repeat("y", 9000) + "\n"))
	alice.Expect(`{"type":"error","code":"frame_too_large"}`)
	daemontest.WaitMetric(t, reg, 1, "qqd_connections_closed_total", "reason", "frame_too_large")
	daemontest.WaitMetric(t, reg, 0, "qqd_connections_open")
	daemontest.WaitMetric(t, reg, 0, "qqd_users_online")
	if got := val("qqd_slow_consumer_disconnects_total"); got != 0 {
		t.Errorf("qqd_slow_consumer_disconnects_total = %v, want 0", got)
	}

	// A swapped-in filter chain is instrumented too.
	ctx, cancel := context.WithTimeout(context.Background(), daemontest.Timeout)
	defer cancel()
	if _, _, err := s.Daemon.SwapPlugins(ctx, nil, []plugins.FilterLink{{Name: "words2", Filter: rejectFilter("ham", "no")}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Daemon.Plugins(); got != st {
		t.Errorf("Plugins() storage = %T, want the caller's own", got)
	}
	dave := s.User(t, "dave")
	dave.Send(`{"type":"send","id":1,"to":"dave","body":"ham"}`)
	dave.Expect(`{"type":"error","id":1,"code":"rejected"}`)
	if got := val("qqd_plugin_call_duration_seconds", "plugin", "words2", "method", "Filter"); got != 1 {
		t.Errorf("words2 filter calls = %v, want 1", got)
	}
	if got := val("qqd_messages_total", "result", "rejected"); got != 2 {
		t.Errorf("qqd_messages_total{result=rejected} = %v, want 2", got)
	}
}

// TestMetricsFailures: storage and filter failures are counted as such.
func TestMetricsFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := daemontest.Config(t)
	cfg.Storage.Timeout = 300 * time.Millisecond
	sq := daemontest.OpenStore(t, cfg)
	fs := &faultyStore{Storage: sq}
	var filterBroken atomic.Bool
	broken := &funcFilter{fn: func(_ context.Context, m plugins.FilterMessage) (plugins.Verdict, error) {
		if filterBroken.Load() {
			return plugins.Verdict{}, errors.New("filter broke")
		}
		return plugins.Verdict{}, nil
	}}
	s := daemontest.StartDeps(t, cfg, daemon.Deps{
		Storage:  fs,
		Registry: reg,
		Filters:  []plugins.FilterLink{{Name: "fragile", Filter: broken, OnFailure: plugins.FailClosed}},
	})
	alice := s.User(t, "alice")
	s.User(t, "bob")

	filterBroken.Store(true)
	alice.Send(`{"type":"send","id":1,"to":"bob","body":"a"}`)
	alice.Expect(`{"type":"error","id":1,"code":"unavailable"}`)
	filterBroken.Store(false)
	fs.fail.Store(true)
	alice.Send(`{"type":"send","id":2,"to":"bob","body":"b"}`)
	alice.Expect(`{"type":"error","id":2,"code":"unavailable"}`)
	c := s.Dial(t)
	c.Send(`{"type":"login","id":"l","user":"bob","password":"password1"}`)
	c.Expect(`{"type":"error","id":"l","code":"unavailable"}`)
	fs.fail.Store(false)

	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"qqd_messages_total", []string{"result", "filter_failed"}, 1},
		{"qqd_messages_total", []string{"result", "failed"}, 1},
		{"qqd_logins_total", []string{"result", "error"}, 1},
		{"qqd_plugin_call_errors_total", []string{"plugin", "fragile", "method", "Filter"}, 1},
		{"qqd_plugin_call_errors_total", []string{"plugin", "storage", "method", "Write"}, 1},
		// bob's login, and the check of max_pending_per_user for send 2
		// (which then fails open: the Write fails too).
		{"qqd_plugin_call_errors_total", []string{"plugin", "storage", "method", "PendingCount"}, 2},
		{"qqd_send_duration_seconds", nil, 2},
	} {
		if got := daemontest.MetricValue(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestMetricsStorageGauges: qqd_pending_messages and qqd_accounts are the
// storage's counts at scrape time; while the storage fails or hangs they
// are left out of the scrape, which stays lint-clean, and every failed
// call counts in qqd_storage_scrape_errors_total. A storage without
// plugins.Stats (sqlitestore) has no qqd_storage_pool_*.
func TestMetricsStorageGauges(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	cfg := daemontest.Config(t)
	sq := daemontest.OpenStore(t, cfg)
	fs := &faultyStore{Storage: sq}
	s := daemontest.StartDeps(t, cfg, daemon.Deps{Storage: fs, Registry: reg})
	// check scrapes once and checks the values and lint of that scrape.
	check := func(step string, pending, accounts, scrapeErrors float64) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("%s: gather: %v", step, err)
		}
		once := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil })
		for _, m := range []struct {
			name string
			want float64
		}{
			{"qqd_pending_messages", pending},
			{"qqd_accounts", accounts},
			{"qqd_storage_scrape_errors_total", scrapeErrors},
		} {
			if got := daemontest.MetricValue(t, once, m.name); got != m.want {
				t.Errorf("%s: %s = %v, want %v", step, m.name, got, m.want)
			}
		}
		problems, err := testutil.GatherAndLint(once)
		if err != nil {
			t.Errorf("%s: GatherAndLint: %v", step, err)
		}
		for _, p := range problems {
			t.Errorf("%s: lint: %s: %s", step, p.Metric, p.Text)
		}
		// sqlitestore has no plugins.Stats: no pool metrics.
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "qqd_storage_pool_") {
				t.Errorf("%s: %s exported for a storage without a pool", step, mf.GetName())
			}
		}
	}
	check("empty", 0, 0, 0)

	alice := s.User(t, "alice")
	bob := s.Dial(t)
	bob.Register("bob", "password1") // not logged in: offline
	check("registered", 0, 2, 0)

	alice.Send(`{"type":"send","id":1,"to":"bob","body":"later"}`)
	alice.Expect(`{"type":"ok","id":1,"status":"queued"}`)
	check("queued for offline bob", 1, 2, 0)

	if n := bob.Login("bob", "password1"); n != 1 {
		t.Fatalf("bob's pending at login = %d, want 1", n)
	}
	bob.Send(`{"type":"offline","id":2}`)
	p := bob.Expect(`{"type":"ok","id":2,"more":false}`)
	if len(p.Messages) != 1 {
		t.Fatalf("offline = %+v, want 1 message", p.Messages)
	}
	check("fetched, not acked", 1, 2, 0)
	bob.Send(fmt.Sprintf(`{"type":"ack","id":3,"msg_ids":[%q]}`, p.Messages[0].ID))
	bob.Expect(`{"type":"ok","id":3}`)
	check("acked", 0, 2, 0)

	// A failing storage: both gauges left out, two errors per scrape.
	fs.fail.Store(true)
	check("failing", -1, -1, 2)
	fs.fail.Store(false)
	check("recovered", 0, 2, 2)
	for _, m := range []string{"CountPending", "CountUsers"} {
		if got := daemontest.MetricValue(t, reg, "qqd_plugin_call_errors_total", "plugin", "storage", "method", m); got != 1 {
			t.Errorf("qqd_plugin_call_errors_total{method=%s} = %v, want 1", m, got)
		}
	}

	// A hanging storage: the calls give up after their 1s timeout, in
	// parallel, and the scrape still answers.
	fs.hang.Store(true)
	start := time.Now()
	if got := daemontest.MetricValue(t, reg, "qqd_pending_messages"); got != -1 {
		t.Errorf("hanging: qqd_pending_messages = %v, want absent", got)
	}
	if d := time.Since(start); d < time.Second || d >= 2*time.Second {
		t.Errorf("hanging: scrape took %v, want the 1s timeout once (calls in parallel)", d)
	}
	fs.hang.Store(false)
	check("after hang", 0, 2, 4)
}

func TestPluginCollector(t *testing.T) {
	c := daemon.PluginCollector(fakeStatuses)
	want := `
# HELP qqd_plugin_restarts_total Times the plugin's process was restarted by its supervisor.
# TYPE qqd_plugin_restarts_total counter
qqd_plugin_restarts_total{plugin="sqlite"} 2
qqd_plugin_restarts_total{plugin="wordfilter"} 5
# HELP qqd_plugin_up Whether the plugin's process is running (1) or down (0).
# TYPE qqd_plugin_up gauge
qqd_plugin_up{plugin="sqlite"} 1
qqd_plugin_up{plugin="wordfilter"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

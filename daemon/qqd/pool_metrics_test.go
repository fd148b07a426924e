package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/postgres/pgstore"
	"github.com/qqchat/qq/plugins/postgres/pgtest/pgtesting"
)

// scrapeQQD gets p's /metrics and parses it.
func scrapeQQD(t *testing.T, p *qqdProc) prometheus.Gatherer {
	t.Helper()
	m := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	var maddr string
	for _, l := range p.logLines() {
		if s := m.FindStringSubmatch(l); s != nil {
			maddr = s[1]
		}
	}
	if maddr == "" {
		t.Fatal("no metrics listener in the log")
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	mfs := make([]*dto.MetricFamily, 0, len(fams))
	for _, mf := range fams {
		mfs = append(mfs, mf)
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil })
}

// once is one scrape of g, to check as a whole.
func once(t *testing.T, g prometheus.Gatherer) prometheus.Gatherer {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, nil })
}

// checkPoolMetrics checks two scrapes: both lint-clean, with the pool's
// metrics for a pool of maxConns that has been used when want, without
// them otherwise. The second one has the first one's Stats call in
// qqd_plugin_call_duration_seconds.
func checkPoolMetrics(t *testing.T, scrape func() prometheus.Gatherer, want bool, maxConns float64) {
	t.Helper()
	checkPoolScrape(t, scrape(), want, maxConns)
	g := scrape()
	checkPoolScrape(t, g, want, maxConns)
	if v := daemontest.MetricValue(t, g, "qqd_plugin_call_duration_seconds", "plugin", "storage", "method", "Stats"); want && v < 1 {
		t.Errorf("qqd_plugin_call_duration_seconds{method=Stats} count = %v, want the first scrape's call", v)
	}
}

func checkPoolScrape(t *testing.T, g prometheus.Gatherer, want bool, maxConns float64) {
	t.Helper()
	problems, err := testutil.GatherAndLint(g)
	if err != nil {
		t.Errorf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if !want {
		for _, name := range []string{
			"qqd_storage_pool_connections", "qqd_storage_pool_max_connections", "qqd_storage_pool_acquires_total",
			"qqd_storage_pool_empty_acquires_total", "qqd_storage_pool_canceled_acquires_total",
			"qqd_storage_pool_acquire_wait_seconds_total",
		} {
			if v := daemontest.MetricValue(t, g, name); v != -1 {
				t.Errorf("%s = %v, want no series (the storage has no pool)", name, v)
			}
		}
		return
	}
	if v := daemontest.MetricValue(t, g, "qqd_storage_pool_max_connections"); v != maxConns {
		t.Errorf("qqd_storage_pool_max_connections = %v, want %v", v, maxConns)
	}
	var conns float64
	for _, state := range []string{"idle", "acquired", "constructing"} {
		v := daemontest.MetricValue(t, g, "qqd_storage_pool_connections", "state", state)
		if v < 0 {
			t.Errorf("qqd_storage_pool_connections{state=%q} = %v", state, v)
		}
		conns += v
	}
	if conns < 1 || conns > maxConns { // the pool keeps its idle connection
		t.Errorf("qqd_storage_pool_connections sum to %v, want 1 to %v", conns, maxConns)
	}
	if v := daemontest.MetricValue(t, g, "qqd_storage_pool_acquires_total"); v < 1 {
		t.Errorf("qqd_storage_pool_acquires_total = %v, want some", v)
	}
	for _, name := range []string{"qqd_storage_pool_empty_acquires_total", "qqd_storage_pool_canceled_acquires_total", "qqd_storage_pool_acquire_wait_seconds_total"} {
		if v := daemontest.MetricValue(t, g, name); v < 0 {
			t.Errorf("%s = %v, want a value", name, v)
		}
	}
	if v := daemontest.MetricValue(t, g, "qqd_storage_scrape_errors_total"); v != 0 {
		t.Errorf("qqd_storage_scrape_errors_total = %v, want 0", v)
	}
}

// TestMetricsStoragePool: qqd's /metrics has the connection pool's
// qqd_storage_pool_* for a postgres storage, in a plugin process (the
// built-in "qqd plugin postgres", protocol version 5) and in qqd's own
// process, and none for the default pebble storage; every scrape is
// lint-clean.
func TestMetricsStoragePool(t *testing.T) {
	srv := pg.Server(t)
	t.Run("postgres plugin", func(t *testing.T) {
		dsn := pgtesting.NewDB(t, srv)
		dir := t.TempDir()
		p := startQQD(t, dir, "-config", writeConfig(t, dir, fmt.Sprintf(
			"filters: []\nstorage:\n  plugin: postgres\n  config:\n    dsn: %q\n    max_conns: 4\n", dsn)))
		dialClient(t, p.addr, "alice").Close() // some use of the pool
		checkPoolMetrics(t, func() prometheus.Gatherer { return scrapeQQD(t, p) }, true, 4)
	})
	t.Run("postgres in process", func(t *testing.T) {
		cfgJSON, err := json.Marshal(map[string]any{"dsn": pgtesting.NewDB(t, srv), "max_conns": 3})
		if err != nil {
			t.Fatal(err)
		}
		st, err := pgstore.New(plugins.Env{DataDir: t.TempDir()}, cfgJSON)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		reg := prometheus.NewPedanticRegistry()
		s := daemontest.StartDeps(t, daemontest.Config(t), daemon.Deps{Storage: st, Registry: reg})
		s.User(t, "alice")
		checkPoolMetrics(t, func() prometheus.Gatherer { return once(t, reg) }, true, 3)
	})
	t.Run(defaultStorage, func(t *testing.T) {
		p := startQQD(t, t.TempDir())
		dialClient(t, p.addr, "alice").Close()
		checkPoolMetrics(t, func() prometheus.Gatherer { return scrapeQQD(t, p) }, false, 0)
	})
}

package monitor_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/qqchat/qq/config"
	"github.com/qqchat/qq/daemon"
	"github.com/qqchat/qq/daemon/daemontest"
	"github.com/qqchat/qq/plugins"
)

const (
	dashboardFile = "../../docs/dashboards/qqd.json"
	alertsFile    = "../../docs/dashboards/qqd-alerts.yml"
)

// qqdMetricNames returns every series name qqd's registry exposes, as
// PromQL sees them (histograms as _bucket, _sum and _count), with the
// registry built as qqd builds it.
func qqdMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		daemon.PluginCollector(func() []plugins.Status { return []plugins.Status{{Name: "sqlite", Up: true}} }),
	)
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	daemontest.SQLite(cfg)
	daemontest.StartDeps(t, cfg, daemon.Deps{Registry: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		} else {
			names[n] = true
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\b(?:qqd|go|process)_[a-zA-Z0-9_]+`)

// checkExpr reports every metric that expr names and qqd does not expose.
func checkExpr(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	refs := metricRef.FindAllString(expr, -1)
	for _, m := range refs {
		if !names[m] {
			t.Errorf("%s: expression %q names %s, which qqd does not expose", where, expr, m)
		}
	}
}

func TestDashboard(t *testing.T) {
	names := qqdMetricNames(t)
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type string
				Query      any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr       string `json:"expr"`
				Datasource *struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want all set, schemaVersion >= 36", dash.UID, dash.Title, dash.SchemaVersion)
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		if v.Name == "DS_PROMETHEUS" && v.Type == "datasource" {
			hasDS = true
		}
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				checkExpr(t, "variable "+v.Name, s, names)
			}
		}
	}
	if !hasDS {
		t.Error("no datasource variable DS_PROMETHEUS")
	}
	ids := map[int]bool{}
	exprs := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: datasource is not ${DS_PROMETHEUS}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: a target's datasource is not ${DS_PROMETHEUS}", p.Title)
			}
			if len(metricRef.FindAllString(tg.Expr, -1)) == 0 {
				t.Errorf("panel %q: expression %q names no qqd metric", p.Title, tg.Expr)
			}
			checkExpr(t, "panel "+p.Title, tg.Expr, names)
			exprs++
		}
	}
	if exprs < 15 {
		t.Errorf("%d expressions, want the full dashboard", exprs)
	}
}

func TestAlerts(t *testing.T) {
	names := qqdMetricNames(t)
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	want := map[string]bool{"QqdDown": false, "QqdPluginRestarting": false, "QqdPluginDown": false,
		"QqdSendErrors": false, "QqdSlowConsumers": false, "QqdSendLatencyHigh": false, "QqdGroupSendErrors": false,
		"QqdBackupFailed": false}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if _, ok := want[r.Alert]; !ok {
				t.Errorf("unexpected alert %q (add it to this test)", r.Alert)
			}
			want[r.Alert] = true
			if r.Expr == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s: needs expr, severity, summary and description", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			checkExpr(t, "alert "+r.Alert, r.Expr, names)
		}
	}
	for a, found := range want {
		if !found {
			t.Errorf("alert %s missing", a)
		}
	}
}

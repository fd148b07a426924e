package monitor_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/daemon/monitor"
)

// failingCollector fails every scrape, to check the others still serve.
type failingCollector struct{ d *prometheus.Desc }

func (c failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(c.d, errors.New("broken"))
}

func get(t *testing.T, h http.Handler, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "qqd_test_total", Help: "A test counter."})
	c.Add(3)
	reg.MustRegister(c, failingCollector{prometheus.NewDesc("qqd_broken", "Always fails.", nil, nil)})
	var readyErr error
	h := monitor.Handler(reg, func() error { return readyErr })

	for _, tc := range []struct {
		method, path string
		ready        error
		wantCode     int
		wantBody     string
	}{
		{"GET", "/metrics", nil, 200, "qqd_test_total 3"},
		{"GET", "/healthz", nil, 200, "ok\n"},
		{"HEAD", "/healthz", nil, 200, ""},
		{"GET", "/healthz", errors.New("down"), 200, "ok\n"},
		{"GET", "/readyz", nil, 200, "ok\n"},
		{"GET", "/readyz", errors.New("storage plugin sqlite is down"), 503, "not ready: storage plugin sqlite is down\n"},
		{"POST", "/readyz", nil, 405, ""},
		{"GET", "/nope", nil, 404, ""},
	} {
		readyErr = tc.ready
		code, body := get(t, h, tc.method, tc.path)
		if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
			t.Errorf("%s %s (ready %v) = %d %q, want %d containing %q", tc.method, tc.path, tc.ready, code, body, tc.wantCode, tc.wantBody)
		}
	}
}

func TestHandlerNilReady(t *testing.T) {
	h := monitor.Handler(prometheus.NewRegistry(), nil)
	if code, body := get(t, h, "GET", "/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /readyz = %d %q, want 200 ok", code, body)
	}
}

// TestHandlerOverHTTP serves the handler on a real listener.
func TestHandlerOverHTTP(t *testing.T) {
	srv := httptest.NewServer(monitor.Handler(prometheus.NewRegistry(), nil))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /metrics = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

// TestPprof checks that the profiler is served only when asked for.
func TestPprof(t *testing.T) {
	for _, tc := range []struct {
		on   bool
		want int
	}{{false, 404}, {true, 200}} {
		h := monitor.Handler(prometheus.NewRegistry(), nil, monitor.WithPprof(tc.on))
		if code, _ := get(t, h, "GET", "/debug/pprof/heap?debug=1"); code != tc.want {
			t.Errorf("pprof %v: GET /debug/pprof/heap = %d, want %d", tc.on, code, tc.want)
		}
	}
}

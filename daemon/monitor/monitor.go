package monitor

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Endpoint paths.
const (
	MetricsPath = "/metrics"
	HealthPath  = "/healthz"
	ReadyPath   = "/readyz"
	PprofPath   = "/debug/pprof/"
)

// Option changes what Handler serves.
type Option func(*options)

type options struct{ pprof bool }

// WithPprof serves net/http/pprof's handlers under PprofPath when on.
func WithPprof(on bool) Option { return func(o *options) { o.pprof = on } }

// Handler serves g on MetricsPath, "ok" on HealthPath while the process
// serves HTTP, and on ReadyPath 200 "ok" when ready returns nil, else 503
// with the reason (a nil ready is always ready). A collector that fails
// does not fail the scrape: the other metrics are still served
// (promhttp.ContinueOnError). Only GET and HEAD are served, except that
// WithPprof adds Go's profiler under PprofPath.
func Handler(g prometheus.Gatherer, ready func() error, opts ...Option) http.Handler {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	mux := http.NewServeMux()
	if o.pprof {
		mux.HandleFunc(PprofPath, pprof.Index)
		mux.HandleFunc(PprofPath+"cmdline", pprof.Cmdline)
		mux.HandleFunc(PprofPath+"profile", pprof.Profile)
		mux.HandleFunc(PprofPath+"symbol", pprof.Symbol)
		mux.HandleFunc(PprofPath+"trace", pprof.Trace)
	}
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		text(w, http.StatusOK, "ok")
	})
	return mux
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(body + "\n"))
}

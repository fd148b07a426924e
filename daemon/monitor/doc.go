// Package monitor is qqd's HTTP monitoring endpoint, served on
// metrics.listen: /metrics (Prometheus text exposition of a Gatherer),
// /healthz (the process serves HTTP) and /readyz (qqd accepts clients and
// its storage is up). It holds no state of its own: qqd passes the
// registry it built and a readiness check.
package monitor

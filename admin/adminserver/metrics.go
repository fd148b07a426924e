package adminserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the admin socket's collectors.
type metrics struct {
	// requests counts calls by endpoint (the route pattern, such as
	// "POST /v1/kick", or "other") and HTTP status code.
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qqd_admin_requests_total",
			Help: "Admin socket requests, by endpoint (route pattern, or \"other\") and HTTP status code.",
		}, []string{"endpoint", "code"}),
	}
	if reg != nil {
		if err := reg.Register(m.requests); err != nil {
			return nil, fmt.Errorf("admin metrics: %w", err)
		}
	}
	return m, nil
}

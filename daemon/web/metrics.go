package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qqchat/qq/daemon/monitor"
)

// upgradeResult is how a GET /ws ended: the result label of
// qqd_web_upgrades_total.
type upgradeResult uint8

const (
	// upgradeOK: upgraded and taken by the daemon.
	upgradeOK upgradeResult = iota
	// upgradeBadOrigin: refused with 403, Origin not allowed.
	upgradeBadOrigin
	// upgradeBadRequest: not a valid WebSocket handshake (the library
	// answered 4xx).
	upgradeBadRequest
	// upgradeBusy: upgraded, but the daemon did not take it within
	// web.handshake_timeout (closed 1013).
	upgradeBusy
	// upgradeShutdown: upgraded, but the listener closed first (closed
	// 1001).
	upgradeShutdown
	numUpgradeResults
)

var upgradeResultNames = [numUpgradeResults]string{
	upgradeOK:         "ok",
	upgradeBadOrigin:  "bad_origin",
	upgradeBadRequest: "bad_request",
	upgradeBusy:       "busy",
	upgradeShutdown:   "shutdown",
}

// requestResult is how a request for a file ended: the result label of
// qqd_web_http_requests_total.
type requestResult uint8

const (
	requestOK requestResult = iota
	requestNotModified
	requestNotFound
	requestBadMethod
	numRequestResults
)

var requestResultNames = [numRequestResults]string{
	requestOK:          "ok",
	requestNotModified: "not_modified",
	requestNotFound:    "not_found",
	requestBadMethod:   "method_not_allowed",
}

// refuseReason is why a connection was closed at accept: the reason
// label of qqd_web_http_connections_refused_total.
type refuseReason uint8

const (
	refuseTotal refuseReason = iota
	refusePerIP
	numRefuseReasons
)

var refuseReasonNames = [numRefuseReasons]string{
	refuseTotal: "max_http_connections",
	refusePerIP: "max_http_connections_per_ip",
}

// metrics are the web listener's collectors. Every label value comes from
// a closed set above; all series exist from the start.
type metrics struct {
	upgrades monitor.Counters[upgradeResult]
	requests monitor.Counters[requestResult]
	refused  monitor.Counters[refuseReason]
	binary   prometheus.Counter
	cols     []prometheus.Collector
}

func newMetrics() *metrics {
	m := &metrics{}
	upgrades := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_web_upgrades_total",
		Help: "WebSocket upgrade requests on the web listener by result: ok (handed to the daemon), bad_origin (403), bad_request, busy (not taken in time, closed 1013), shutdown.",
	}, []string{"result"})
	m.upgrades = monitor.NewCounters[upgradeResult](upgrades, upgradeResultNames[:])
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_web_http_requests_total",
		Help: "Requests for the web app's files by result: ok, not_modified (304), not_found, method_not_allowed.",
	}, []string{"result"})
	m.requests = monitor.NewCounters[requestResult](requests, requestResultNames[:])
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qqd_web_http_connections_refused_total",
		Help: "Connections to the web listener closed at accept, past web.max_http_connections or web.max_http_connections_per_ip.",
	}, []string{"reason"})
	m.refused = monitor.NewCounters[refuseReason](refused, refuseReasonNames[:])
	m.binary = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "qqd_web_binary_messages_total",
		Help: "WebSocket sessions closed with status 1003 because they sent a binary message.",
	})
	m.cols = []prometheus.Collector{upgrades, requests, refused, m.binary}
	return m
}

// register registers the collectors on reg (nil: kept unregistered).
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range m.cols {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

package cluster

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's: bus traffic, recovery of lost pushes (gap
// fills and sweeps), cluster-wide requests and fencing. Labels come from
// closed sets (kind: msg, frame; source: gap, sweep).
type metrics struct {
	published        [2]prometheus.Counter
	received         [2]prometheus.Counter
	publishErrors    prometheus.Counter
	disconnects      prometheus.Counter
	reconnects       prometheus.Counter
	slowConsumer     prometheus.Counter
	gapFills         prometheus.Counter
	recovered        [2]prometheus.Counter // by gap fill, by sweep
	duplicates       prometheus.Counter
	heldDropped      prometheus.Counter
	sweeps           prometheus.Counter
	sweepErrors      prometheus.Counter
	requests         prometheus.Counter
	requestsPartial  prometheus.Counter
	peersLost        prometheus.Counter
	directoryResyncs prometheus.Counter
	fences           prometheus.Counter
	fenced           prometheus.Gauge
	all              []prometheus.Collector
}

func newMetrics(n *Node) *metrics {
	m := &metrics{}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "qqd_cluster_" + name, Help: help})
		m.all = append(m.all, c)
		return c
	}
	pub := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qqd_cluster_bus_published_total",
		Help: "Pushes published on the bus for users on other nodes, by kind (msg: a direct message with its seq; frame: any other push)."}, []string{"kind"})
	rcv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qqd_cluster_bus_received_total",
		Help: "Pushes received from the bus for users on this node, by kind."}, []string{"kind"})
	rec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "qqd_cluster_recovered_messages_total",
		Help: "Direct messages read from storage and pushed because the bus lost them, by what found them (gap: a later seq arrived; sweep: the periodic or post-reconnect sweep)."}, []string{"source"})
	m.all = append(m.all, pub, rcv, rec)
	for i, k := range []string{"msg", "frame"} {
		m.published[i] = pub.WithLabelValues(k)
		m.received[i] = rcv.WithLabelValues(k)
	}
	m.recovered[0] = rec.WithLabelValues("gap")
	m.recovered[1] = rec.WithLabelValues("sweep")
	m.publishErrors = counter("bus_publish_errors_total", "Publishes that failed (NATS down past its reconnect buffer); the sweep after the reconnect recovers them.")
	m.disconnects = counter("nats_disconnects_total", "Times the connection to NATS was lost.")
	m.reconnects = counter("nats_reconnects_total", "Times the connection to NATS came back (each triggers a sweep).")
	m.slowConsumer = counter("bus_slow_consumer_total", "Bus messages NATS dropped because this node did not take them fast enough (recovered like any lost push).")
	m.gapFills = counter("gap_fills_total", "Storage reads made because a user's pushes arrived with a seq gap that did not close within the gap wait.")
	m.duplicates = counter("bus_duplicates_total", "Direct message pushes not delivered again because this node had delivered their seq already.")
	m.heldDropped = counter("held_dropped_total", "Pushes not held in memory while a user's seq gap was open (past 1024 per user); the gap fill reads them from storage.")
	m.sweeps = counter("sweeps_total", "Sweeps run (each reads the pending messages of every user online here).")
	m.sweepErrors = counter("sweep_errors_total", "Storage reads of a sweep or gap fill that failed (retried at the next one).")
	m.requests = counter("requests_total", "Cluster-wide requests (users, sessions, kick, broadcast) this node asked.")
	m.requestsPartial = counter("requests_partial_total", "Cluster-wide requests that ended at the deadline before every live node answered.")
	m.peersLost = counter("peers_lost_total", "Times another node stopped heartbeating and was dropped from the directory.")
	m.directoryResyncs = counter("directory_resyncs_total", "Presence directory snapshots asked because an event of another node was lost.")
	m.fences = counter("fences_total", "Times this node fenced itself (lost NATS or storage for cluster.fence_after).")
	m.fenced = prometheus.NewGauge(prometheus.GaugeOpts{Name: "qqd_cluster_fenced", Help: "1 while this node is fenced: it refuses logins and is not ready."})
	m.all = append(m.all, m.fenced,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qqd_cluster_nats_connected", Help: "1 while connected to NATS."}, func() float64 {
			if n.nc != nil && n.nc.IsConnected() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qqd_cluster_peers", Help: "Other nodes heard from within the last three heartbeats."}, func() float64 {
			return float64(len(n.Peers()))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "qqd_cluster_subscriptions", Help: "Users whose pushes this node receives from the bus (users with a session here)."}, func() float64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return float64(len(n.subs))
		}),
	)
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range m.all {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

package monitor

import "github.com/prometheus/client_golang/prometheus"

// Counters are the series of one counter vector for a closed set of
// label values, indexed by the typed value (an enum whose values count
// from 0), so that a hot path increments a series without a label lookup.
type Counters[T ~uint8] []prometheus.Counter

// NewCounters makes vec's series for every value of names, in order:
// names[v] is the label value of T(v). All series exist from the start.
func NewCounters[T ~uint8](vec *prometheus.CounterVec, names []string) Counters[T] {
	cs := make(Counters[T], len(names))
	for i, n := range names {
		cs[i] = vec.WithLabelValues(n)
	}
	return cs
}

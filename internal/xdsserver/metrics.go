package xdsserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	nacks        *prometheus.CounterVec
	pushes       *prometheus.CounterVec
	pushDuration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, connected func() float64) (*metrics, error) {
	m := &metrics{
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_xds_nacks_total",
			Help: "xDS responses rejected by proxies (requests carrying error_detail), by resource type.",
		}, []string{"type"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "trellis_xds_pushes_total",
			Help: "xDS responses sent to proxies, by resource type.",
		}, []string{"type"}),
		pushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trellis_xds_push_duration_seconds",
			Help:    "Time to set the snapshots of every proxy after a change.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
	}
	connectedGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trellis_xds_connected_proxies",
		Help: "Proxies with at least one open xDS stream.",
	}, connected)
	for _, c := range []prometheus.Collector{m.nacks, m.pushes, m.pushDuration, connectedGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering xDS metrics: %w", err)
		}
	}
	return m, nil
}

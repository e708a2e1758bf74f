package ratelimit

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// result is the result label of a decision.
type result string

// The results of a descriptor's decision.
const (
	resultOK        result = "OK"         // under the limit, or no limit applies
	resultOverLimit result = "OVER_LIMIT" // over an enforced limit: refused
	resultShadow    result = "SHADOW"     // over a shadow limit: let through, counted
	resultError     result = "ERROR"      // the store failed: answered per the failure mode
)

// otherDomain is the domain label of requests for a domain the server does not limit,
// so that clients cannot grow the label set.
const otherDomain = "other"

// metrics are the server's Prometheus collectors.
type metrics struct {
	known, other domainCounters
}

// domainCounters are the decision counters of one domain label, looked up once.
type domainCounters struct {
	ok, overLimit, shadow, error prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, domain string) (*metrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_ratelimit_decisions_total",
		Help: "Rate-limit decisions, one per descriptor checked, by domain and result (OK, OVER_LIMIT, SHADOW: over a shadow limit and let through, ERROR: the store failed).",
	}, []string{"domain", "result"})
	if reg != nil {
		if err := reg.Register(decisions); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("registering metrics: %w", err)
			}
			decisions = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	counters := func(d string) domainCounters {
		return domainCounters{
			ok:        decisions.WithLabelValues(d, string(resultOK)),
			overLimit: decisions.WithLabelValues(d, string(resultOverLimit)),
			shadow:    decisions.WithLabelValues(d, string(resultShadow)),
			error:     decisions.WithLabelValues(d, string(resultError)),
		}
	}
	return &metrics{known: counters(domain), other: counters(otherDomain)}, nil
}

func (m *metrics) forDomain(known bool) *domainCounters {
	if known {
		return &m.known
	}
	return &m.other
}

func (c *domainCounters) count(r result) {
	switch r {
	case resultOK:
		c.ok.Inc()
	case resultOverLimit:
		c.overLimit.Inc()
	case resultShadow:
		c.shadow.Inc()
	case resultError:
		c.error.Inc()
	}
}

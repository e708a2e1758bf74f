package lb

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// OutlierConfig is a cluster's outlier detection, with Envoy's meaning and defaults
// (OutlierDefaults).
type OutlierConfig struct {
	// Consecutive5xx ejects an endpoint after this many 5xx answers or local failures
	// (connect failure, timeout, reset) in a row.
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure ejects after this many 502, 503, 504 answers or local
	// failures in a row.
	ConsecutiveGatewayFailure uint32
	// Enforcing5xx and EnforcingGatewayFailure are the chances, in percent, that
	// reaching the threshold ejects.
	Enforcing5xx            uint32
	EnforcingGatewayFailure uint32
	// Interval is how often ejections are reviewed (and lifted when over).
	Interval time.Duration
	// BaseEjectionTime times the number of times an endpoint was ejected is how long an
	// ejection lasts, at most MaxEjectionTime.
	BaseEjectionTime time.Duration
	MaxEjectionTime  time.Duration
	// MaxEjectionPercent caps the share of the cluster ejected at once; one endpoint may
	// always be ejected.
	MaxEjectionPercent uint32
}

// OutlierDefaults returns Envoy's defaults: 5 consecutive 5xx (enforced always), 5
// consecutive gateway failures (not enforced), 10s interval, 30s base ejection time,
// 300s maximum, 10% maximum ejected.
func OutlierDefaults() OutlierConfig {
	return OutlierConfig{
		Consecutive5xx:            5,
		ConsecutiveGatewayFailure: 5,
		Enforcing5xx:              100,
		EnforcingGatewayFailure:   0,
		Interval:                  10 * time.Second,
		BaseEjectionTime:          30 * time.Second,
		MaxEjectionTime:           300 * time.Second,
		MaxEjectionPercent:        10,
	}
}

// Result is the outcome of one attempt on an endpoint, as outlier detection sees it.
type Result struct {
	// Status is the HTTP status answered; 0 when there was no answer.
	Status int
	// LocalFailure is set when there was no answer: connect failure, timeout, reset.
	LocalFailure bool
}

// Outlier is the outlier detection of one cluster. Report is called on the request
// path for every attempt (atomics only until a threshold is reached); Tick is called
// every Interval by the cluster's owner and lifts ejections that are over. Update
// follows configuration and endpoint changes. mu guards the ejection bookkeeping.
type Outlier struct {
	now func() time.Time

	mu      sync.Mutex
	cfg     OutlierConfig
	eps     []*Endpoint
	ejected atomic.Int32 // ejected endpoints among eps
}

// NewOutlier returns outlier detection with cfg; now is the clock (time.Now if nil).
func NewOutlier(cfg OutlierConfig, now func() time.Time) *Outlier {
	if now == nil {
		now = time.Now
	}
	return &Outlier{cfg: cfg, now: now}
}

// EjectedCount is the number of ejected endpoints, for a Set built over the same
// endpoints.
func (o *Outlier) EjectedCount() *atomic.Int32 { return &o.ejected }

// Config returns the configuration in effect.
func (o *Outlier) Config() OutlierConfig {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cfg
}

// Update sets the configuration and the cluster's endpoints. Endpoints no longer in
// the cluster are returned to health (their state goes with them).
func (o *Outlier) Update(cfg OutlierConfig, eps []*Endpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cfg = cfg
	keep := make(map[*Endpoint]bool, len(eps))
	for _, ep := range eps {
		keep[ep] = true
	}
	for _, ep := range o.eps {
		if !keep[ep] && ep.ejected.Load() {
			ep.ejected.Store(false)
		}
	}
	o.eps = eps
	o.recount()
}

func (o *Outlier) recount() {
	var n int32
	for _, ep := range o.eps {
		if ep.ejected.Load() {
			n++
		}
	}
	o.ejected.Store(n)
}

// Report records the result of one attempt on ep. A success (any answer below 500)
// resets the endpoint's consecutive counters; a failure that reaches a threshold
// ejects the endpoint at once, within the limits of the configuration.
func (o *Outlier) Report(ep *Endpoint, r Result) {
	if o == nil || ep == nil {
		return
	}
	gateway := r.LocalFailure || r.Status == 502 || r.Status == 503 || r.Status == 504
	fail5xx := r.LocalFailure || r.Status >= 500
	if !fail5xx {
		if ep.cons5xx.Load() != 0 {
			ep.cons5xx.Store(0)
		}
		if ep.consGateway.Load() != 0 {
			ep.consGateway.Store(0)
		}
		return
	}
	n5xx := ep.cons5xx.Add(1)
	var ngw uint32
	if gateway {
		ngw = ep.consGateway.Add(1)
	} else if ep.consGateway.Load() != 0 {
		ep.consGateway.Store(0)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cfg := o.cfg
	switch {
	case cfg.Consecutive5xx > 0 && n5xx >= cfg.Consecutive5xx:
		ep.cons5xx.Store(0)
		ep.consGateway.Store(0)
		if enforce(cfg.Enforcing5xx) {
			o.eject(ep)
		}
	case gateway && cfg.ConsecutiveGatewayFailure > 0 && ngw >= cfg.ConsecutiveGatewayFailure:
		ep.consGateway.Store(0)
		if enforce(cfg.EnforcingGatewayFailure) {
			o.eject(ep)
		}
	}
}

func enforce(percent uint32) bool {
	return percent >= 100 || (percent > 0 && rand.Uint32N(100) < percent)
}

// eject ejects ep unless it already is, is not one of the cluster's endpoints, or the
// cap on ejected endpoints is reached. Call with mu held.
func (o *Outlier) eject(ep *Endpoint) {
	if ep.ejected.Load() || !o.member(ep) {
		return
	}
	ejected := int(o.ejected.Load())
	if ejected > 0 && 100*ejected >= int(o.cfg.MaxEjectionPercent)*len(o.eps) {
		return
	}
	ep.timesEjected++
	ep.ejectedAt = o.now().UnixNano()
	ep.ejected.Store(true)
	o.ejected.Add(1)
}

func (o *Outlier) member(ep *Endpoint) bool {
	for _, e := range o.eps {
		if e == ep {
			return true
		}
	}
	return false
}

// Tick lifts the ejections that are over: an endpoint ejected k times stays out for
// k × BaseEjectionTime (at most MaxEjectionTime). An endpoint that has stayed in for a
// base ejection time since it was last ejected has its count lowered by one, so that
// a long-healthy endpoint starts again from the base time. It returns the number of
// endpoints returned to service.
func (o *Outlier) Tick() int {
	if o == nil {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now().UnixNano()
	lifted := 0
	for _, ep := range o.eps {
		if ep.timesEjected == 0 {
			continue
		}
		d := min(time.Duration(ep.timesEjected)*o.cfg.BaseEjectionTime, max(o.cfg.MaxEjectionTime, o.cfg.BaseEjectionTime))
		since := time.Duration(now - ep.ejectedAt)
		switch {
		case ep.ejected.Load() && since >= d:
			ep.ejected.Store(false)
			ep.cons5xx.Store(0)
			ep.consGateway.Store(0)
			ep.ejectedAt = now // the count decays from here
			lifted++
		case !ep.ejected.Load() && since >= o.cfg.BaseEjectionTime:
			ep.timesEjected--
			ep.ejectedAt = now
		}
	}
	o.recount()
	return lifted
}

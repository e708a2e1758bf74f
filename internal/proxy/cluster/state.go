package cluster

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// State is the live state of one cluster, kept across configuration changes while a
// cluster of that name exists: its endpoints (by address, with their load and
// ejections), the picker over them, its circuit breakers and outlier detection, and
// for a STRICT_DNS cluster the resolver loop. The request path calls Pick, Report and
// Breakers concurrently; the configuration path calls update and close, one at a time.
type State struct {
	name   string
	logger *slog.Logger
	res    Resolver

	picker   atomic.Pointer[pickerBox]
	breakers *Breakers
	outlier  atomic.Pointer[lb.Outlier] // nil without outlier detection

	mu        sync.Mutex // guards what follows
	cfg       *runtime.Cluster
	addrs     []string // the addresses balanced over (resolved, for DNS)
	endpoints map[string]*lb.Endpoint
	od        *lb.Outlier // kept while enabled, so ejections survive updates
	tickStop  func()
	tickEvery time.Duration
	dnsStop   func()
	dnsKey    string
	wg        sync.WaitGroup
}

type pickerBox struct{ p lb.Picker }

func newState(name string, logger *slog.Logger, res Resolver) *State {
	return &State{name: name, logger: logger, res: res, endpoints: map[string]*lb.Endpoint{}}
}

// Pick picks an endpoint for req, or nil when none is usable.
func (s *State) Pick(req lb.Request) *lb.Endpoint {
	box := s.picker.Load()
	if box == nil {
		return nil
	}
	return box.p.Pick(req)
}

// Breakers returns the cluster's circuit breakers.
func (s *State) Breakers() *Breakers { return s.breakers }

// Report records the outcome of an attempt on ep for outlier detection.
func (s *State) Report(ep *lb.Endpoint, r lb.Result) {
	if o := s.outlier.Load(); o != nil {
		o.Report(ep, r)
	}
}

// Endpoints returns the endpoints balanced over now.
func (s *State) Endpoints() []*lb.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*lb.Endpoint, 0, len(s.addrs))
	for _, a := range s.addrs {
		out = append(out, s.endpoints[a])
	}
	return out
}

// Ejected returns how many of the endpoints outlier detection has ejected now.
func (s *State) Ejected() int {
	if o := s.outlier.Load(); o != nil {
		return int(o.EjectedCount().Load())
	}
	return 0
}

// update applies a cluster's new configuration. For a DNS cluster whose names
// changed it resolves them once before returning (bounded by dnsFirstWait), so that
// the first requests find endpoints, then keeps resolving in the background.
func (s *State) update(ctx context.Context, c *runtime.Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = c
	if s.breakers == nil {
		s.breakers = newBreakers(c.Breakers)
	} else {
		s.breakers.setThresholds(c.Breakers)
	}
	s.updateOutlier(ctx, c)
	if !c.DNS {
		s.stopDNS()
		s.rebuild(c.Endpoints)
		return
	}
	key := dnsKey(c)
	if key == s.dnsKey && s.dnsStop != nil {
		s.rebuild(s.addrs) // new policy, same resolved addresses
		return
	}
	s.stopDNS()
	s.dnsKey = key
	first, cancel := context.WithTimeout(ctx, dnsFirstWait)
	addrs, err := resolveAll(first, s.res, c.Endpoints)
	cancel()
	if err != nil {
		s.logger.Warn("resolving DNS cluster", "cluster", s.name, "error", err)
	}
	s.rebuild(addrs)
	s.startDNS(ctx, c)
}

// updateOutlier starts, reconfigures or stops outlier detection. Call with mu held.
func (s *State) updateOutlier(ctx context.Context, c *runtime.Cluster) {
	if c.Outlier == nil {
		if s.od != nil {
			// Ejections end with detection.
			s.od.Update(s.od.Config(), nil)
			s.od = nil
		}
		s.outlier.Store(nil)
		s.stopTicker()
		return
	}
	if s.od == nil {
		s.od = lb.NewOutlier(*c.Outlier, nil)
	}
	if s.tickStop == nil || s.tickEvery != c.Outlier.Interval {
		s.stopTicker()
		s.startTicker(ctx, c.Outlier.Interval)
	}
	s.outlier.Store(s.od)
}

func (s *State) startTicker(ctx context.Context, every time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	s.tickStop, s.tickEvery = cancel, every
	od := s.od
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n := od.Tick(); n > 0 {
					s.logger.Debug("outlier ejections lifted", "cluster", s.name, "endpoints", n)
				}
			}
		}
	})
}

func (s *State) stopTicker() {
	if s.tickStop != nil {
		s.tickStop()
		s.tickStop = nil
	}
}

// rebuild makes the picker for addrs, keeping the state of endpoints already known.
// Call with mu held.
func (s *State) rebuild(addrs []string) {
	c := s.cfg
	s.addrs = slices.Clone(addrs)
	eps := make([]*lb.Endpoint, 0, len(addrs))
	keep := make(map[string]*lb.Endpoint, len(addrs))
	for _, a := range addrs {
		ep := s.endpoints[a]
		if ep == nil {
			ep = lb.NewEndpoint(a)
		}
		keep[a] = ep
		eps = append(eps, ep)
	}
	s.endpoints = keep
	var set *lb.Set
	if s.od != nil {
		s.od.Update(*c.Outlier, eps)
		set = lb.NewSet(eps, c.PanicThreshold, s.od.EjectedCount())
	} else {
		set = lb.NewSet(eps, c.PanicThreshold, nil)
	}
	var p lb.Picker
	switch c.LB.Kind {
	case runtime.LeastRequest:
		p = lb.NewLeastRequest(set, c.LB.ChoiceCount)
	case runtime.Random:
		p = lb.NewRandom(set)
	case runtime.RingHash:
		p = lb.NewRingHash(set, c.LB.MinRingSize)
	default:
		p = lb.NewRoundRobin(set)
	}
	s.picker.Store(&pickerBox{p: p})
}

// close stops the state's goroutines and waits for them.
func (s *State) close() {
	s.mu.Lock()
	s.stopTicker()
	s.stopDNS()
	s.mu.Unlock()
	s.wg.Wait()
}

package lb

import (
	"sync/atomic"
)

// Picker chooses the endpoint for one request or connection. It is safe for
// concurrent use. It returns nil when no endpoint may be used: the set is empty, or
// every endpoint is ejected and the set is not in panic mode.
type Picker interface {
	Pick(req Request) *Endpoint
}

// Request is what a picker may know about the request being balanced. It is passed by
// value so that picking allocates nothing.
type Request struct {
	// Hash is the request's hash key (from the route's hash policy) for consistent
	// hashing; HasHash says whether there is one.
	Hash    uint64
	HasHash bool
	// Tried are endpoints already used by earlier attempts of this request; a picker
	// avoids them when another endpoint is available.
	Tried []*Endpoint
}

func (r *Request) tried(ep *Endpoint) bool {
	for _, t := range r.Tried {
		if t == ep {
			return true
		}
	}
	return false
}

// Endpoint is one upstream endpoint with its live state: requests in flight and
// outlier-detection state. The same *Endpoint is kept for a (cluster, address) pair
// across configuration changes, so that the state survives them.
type Endpoint struct {
	// Addr is host:port.
	Addr string

	active  atomic.Int64
	ejected atomic.Bool
	// Consecutive failure counters, updated by Outlier.Report.
	cons5xx     atomic.Uint32
	consGateway atomic.Uint32
	// Ejection bookkeeping, guarded by the owning Outlier's mutex.
	ejectedAt    int64 // unix nanoseconds
	timesEjected uint32
}

// NewEndpoint returns the state of a new endpoint.
func NewEndpoint(addr string) *Endpoint { return &Endpoint{Addr: addr} }

// Begin counts a request (or connection) in flight to the endpoint; End ends it.
func (e *Endpoint) Begin() { e.active.Add(1) }

// End ends what Begin counted.
func (e *Endpoint) End() { e.active.Add(-1) }

// Active returns the requests in flight.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Ejected reports whether outlier detection has ejected the endpoint.
func (e *Endpoint) Ejected() bool { return e.ejected.Load() }

// Set is the endpoints a picker balances over, immutable, with what decides which of
// them may be used.
type Set struct {
	eps []*Endpoint
	// panicThreshold is a percentage: when fewer than this share of the endpoints are
	// healthy (not ejected), ejections are ignored and every endpoint is used.
	panicThreshold float64
	ejected        *atomic.Int32
}

// DefaultPanicThreshold is Envoy's default healthy_panic_threshold, in percent.
const DefaultPanicThreshold = 50

// NewSet returns a set over eps. ejected counts the ejected endpoints among eps (the
// cluster's Outlier maintains it); nil means none are ever ejected. panicThreshold is
// in percent; 0 disables panic mode.
func NewSet(eps []*Endpoint, panicThreshold float64, ejected *atomic.Int32) *Set {
	if ejected == nil {
		ejected = new(atomic.Int32)
	}
	return &Set{eps: eps, panicThreshold: panicThreshold, ejected: ejected}
}

// Endpoints returns the endpoints; the caller must not modify the slice.
func (s *Set) Endpoints() []*Endpoint { return s.eps }

// Len returns the number of endpoints.
func (s *Set) Len() int { return len(s.eps) }

// panic reports whether so many endpoints are ejected that all must be used.
func (s *Set) panic() bool {
	e := s.ejected.Load()
	if e == 0 {
		return false
	}
	n := float64(len(s.eps))
	return (n-float64(e))*100 < s.panicThreshold*n
}

// usable reports whether ep may take the request: not ejected (or the set is in
// panic) and not tried already (unless avoidTried is false).
func usable(ep *Endpoint, req *Request, panic, avoidTried bool) bool {
	if !panic && ep.ejected.Load() {
		return false
	}
	return !avoidTried || !req.tried(ep)
}

// scan returns the first usable endpoint from index start on, wrapping around, first
// avoiding tried endpoints and then not; nil if none.
func (s *Set) scan(start int, req *Request) *Endpoint {
	n := len(s.eps)
	panic := s.panic()
	for _, avoid := range [2]bool{true, false} {
		if !avoid && len(req.Tried) == 0 {
			break
		}
		for k := range n {
			ep := s.eps[(start+k)%n]
			if usable(ep, req, panic, avoid) {
				return ep
			}
		}
	}
	return nil
}

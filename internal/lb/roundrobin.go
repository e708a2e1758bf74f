package lb

import (
	"math/rand/v2"
	"sync/atomic"
)

// RoundRobin picks endpoints in turn, skipping ejected ones. It is lock-free: one
// atomic counter over an immutable set. The first pick starts at a random offset so
// that many sidecars starting together do not all send their first request to the
// same endpoint.
type RoundRobin struct {
	set  *Set
	next atomic.Uint64
}

var _ Picker = (*RoundRobin)(nil)

// NewRoundRobin returns a round-robin picker over set.
func NewRoundRobin(set *Set) *RoundRobin {
	rr := &RoundRobin{set: set}
	if n := set.Len(); n > 1 {
		rr.next.Store(rand.Uint64N(uint64(n)))
	}
	return rr
}

// Pick returns the next usable endpoint, or nil.
func (rr *RoundRobin) Pick(req Request) *Endpoint {
	n := uint64(rr.set.Len())
	if n == 0 {
		return nil
	}
	i := rr.next.Add(1) - 1
	return rr.set.scan(int(i%n), &req)
}

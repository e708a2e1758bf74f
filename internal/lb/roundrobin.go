package lb

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// RoundRobin picks endpoints in turn. It is lock-free: one atomic counter over an
// immutable slice. The first pick starts at a random offset so that many sidecars
// starting together do not all send their first request to the same endpoint.
type RoundRobin struct {
	addrs []string
	next  atomic.Uint64
}

var _ Picker = (*RoundRobin)(nil)

// NewRoundRobin returns a round-robin picker over a copy of addrs.
func NewRoundRobin(addrs []string) *RoundRobin {
	rr := &RoundRobin{addrs: slices.Clone(addrs)}
	if len(addrs) > 1 {
		rr.next.Store(rand.Uint64N(uint64(len(addrs))))
	}
	return rr
}

// Pick returns the next endpoint, or ok false when there is none.
func (rr *RoundRobin) Pick() (string, bool) {
	n := uint64(len(rr.addrs))
	switch n {
	case 0:
		return "", false
	case 1:
		return rr.addrs[0], true
	}
	i := rr.next.Add(1) - 1
	return rr.addrs[i%n], true
}

// Endpoints returns the endpoint addresses in their configured order.
func (rr *RoundRobin) Endpoints() []string { return slices.Clone(rr.addrs) }

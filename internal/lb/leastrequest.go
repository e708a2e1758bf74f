package lb

import "math/rand/v2"

// DefaultChoiceCount is how many random endpoints LeastRequest compares when the
// configuration does not say (Envoy's default: power of two choices).
const DefaultChoiceCount = 2

// LeastRequest draws ChoiceCount usable endpoints at random and picks the one with the
// fewest requests in flight (power of two choices by default).
type LeastRequest struct {
	set     *Set
	choices int
}

var _ Picker = (*LeastRequest)(nil)

// NewLeastRequest returns a least-request picker comparing choices random endpoints
// (DefaultChoiceCount when choices < 2).
func NewLeastRequest(set *Set, choices int) *LeastRequest {
	if choices < 2 {
		choices = DefaultChoiceCount
	}
	return &LeastRequest{set: set, choices: choices}
}

// Pick returns the least loaded of the drawn endpoints, or nil.
func (lr *LeastRequest) Pick(req Request) *Endpoint {
	n := lr.set.Len()
	switch n {
	case 0:
		return nil
	case 1:
		return lr.set.scan(0, &req)
	}
	var best *Endpoint
	var bestActive int64
	for range lr.choices {
		ep := lr.set.scan(rand.IntN(n), &req)
		if ep == nil {
			return nil
		}
		if a := ep.Active(); best == nil || a < bestActive {
			best, bestActive = ep, a
		}
	}
	return best
}

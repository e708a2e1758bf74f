package lb

import "math/rand/v2"

// Random picks a usable endpoint uniformly at random.
type Random struct {
	set *Set
}

var _ Picker = (*Random)(nil)

// NewRandom returns a random picker over set.
func NewRandom(set *Set) *Random { return &Random{set: set} }

// Pick returns a random usable endpoint, or nil.
func (r *Random) Pick(req Request) *Endpoint {
	n := r.set.Len()
	if n == 0 {
		return nil
	}
	return r.set.scan(rand.IntN(n), &req)
}

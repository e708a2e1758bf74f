package lb

import (
	"math/rand/v2"
	"slices"
	"strconv"
)

// DefaultMinRingSize is the ring's size when the configuration does not say (Envoy's
// default minimum_ring_size).
const DefaultMinRingSize = 1024

// maxRingSize bounds the ring whatever the configuration asks (Envoy's default
// maximum_ring_size is 8M; a sidecar needs far less).
const maxRingSize = 1 << 20

// RingHash is consistent hashing on a ring (Karger et al.): every endpoint owns
// several points of a 64-bit ring, and a request goes to the owner of the first point
// at or after its hash, skipping endpoints that cannot take it. Requests with the same
// key go to the same endpoint while it is usable, and a change of endpoints moves only
// the keys of the points that changed. A request without a hash key goes to a random
// endpoint.
type RingHash struct {
	set  *Set
	ring []ringPoint
}

type ringPoint struct {
	hash uint64
	ep   *Endpoint
}

var _ Picker = (*RingHash)(nil)

// NewRingHash builds the ring over set with at least minSize points
// (DefaultMinRingSize when 0).
func NewRingHash(set *Set, minSize int) *RingHash {
	if minSize <= 0 {
		minSize = DefaultMinRingSize
	}
	minSize = min(minSize, maxRingSize)
	rh := &RingHash{set: set}
	n := set.Len()
	if n == 0 {
		return rh
	}
	per := (minSize + n - 1) / n
	rh.ring = make([]ringPoint, 0, per*n)
	buf := make([]byte, 0, 64)
	for _, ep := range set.eps {
		for i := range per {
			buf = append(buf[:0], ep.Addr...)
			buf = append(buf, '_')
			buf = strconv.AppendInt(buf, int64(i), 10)
			rh.ring = append(rh.ring, ringPoint{hash: HashBytes(buf), ep: ep})
		}
	}
	slices.SortFunc(rh.ring, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return rh
}

// Pick returns the endpoint owning req.Hash, or the next usable one clockwise; a random
// usable endpoint when the request has no hash; nil when none is usable.
func (rh *RingHash) Pick(req Request) *Endpoint {
	n := len(rh.ring)
	if n == 0 {
		return nil
	}
	if !req.HasHash {
		return rh.set.scan(rand.IntN(rh.set.Len()), &req)
	}
	i, _ := slices.BinarySearchFunc(rh.ring, req.Hash, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	panic := rh.set.panic()
	for _, avoid := range [2]bool{true, false} {
		if !avoid && len(req.Tried) == 0 {
			break
		}
		for k := range n {
			if ep := rh.ring[(i+k)%n].ep; usable(ep, &req, panic, avoid) {
				return ep
			}
		}
	}
	return nil
}

// HashString hashes a request key (a header value, a cookie, an address) for
// consistent hashing: 64-bit FNV-1a with a final avalanche, allocation-free.
func HashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := range len(s) {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return mix(h)
}

// HashBytes is HashString over bytes.
func HashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return mix(h)
}

// CombineHash folds the hash of another policy into h, as Envoy combines several
// hash policies of one route.
func CombineHash(h, next uint64) uint64 { return (h<<1 | h>>63) ^ next }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// mix is the splitmix64 finalizer: FNV alone spreads similar keys poorly on a ring.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

package ratelimit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// bucket is a token bucket as Envoy's local rate limit keeps it: MaxTokens, refilled
// with TokensPerFill at every FillInterval since the bucket was made. Its state is
// one word: the fill epoch (intervals since start) in the high half, the tokens in
// the low half.
type bucket struct {
	cfg   runtime.TokenBucket
	start time.Time
	state atomic.Uint64
}

func newBucket(cfg runtime.TokenBucket, now time.Time) *bucket {
	b := &bucket{cfg: cfg, start: now}
	b.state.Store(uint64(cfg.MaxTokens))
	return b
}

// take takes a token if there is one, and returns the tokens left and the time until
// the next fill.
func (b *bucket) take(now time.Time) (ok bool, remaining uint32, reset time.Duration) {
	elapsed := now.Sub(b.start)
	if elapsed < 0 {
		elapsed = 0
	}
	epoch := uint32(elapsed / b.cfg.FillInterval)
	reset = b.cfg.FillInterval - elapsed%b.cfg.FillInterval
	for {
		old := b.state.Load()
		e, tokens := uint32(old>>32), uint32(old)
		if d := int32(epoch - e); d > 0 {
			t := uint64(tokens) + uint64(d)*uint64(b.cfg.TokensPerFill)
			tokens = uint32(min(t, uint64(b.cfg.MaxTokens)))
			e = epoch
		}
		ok = tokens > 0
		if ok {
			tokens--
		}
		if b.state.CompareAndSwap(old, uint64(e)<<32|uint64(tokens)) {
			return ok, tokens, reset
		}
	}
}

// full reports whether the bucket would be full at now: dropping it loses nothing.
func (b *bucket) full(now time.Time) bool {
	old := b.state.Load()
	e, tokens := uint32(old>>32), uint32(old)
	epoch := uint32(now.Sub(b.start) / b.cfg.FillInterval)
	if d := int32(epoch - e); d > 0 {
		return uint64(tokens)+uint64(d)*uint64(b.cfg.TokensPerFill) >= uint64(b.cfg.MaxTokens)
	}
	return tokens >= b.cfg.MaxTokens
}

const shards = 64

// buckets are every bucket of the sidecar, by key, in lock-striped maps.
type buckets struct {
	seed   maphash.Seed
	shards [shards]shard
	// dynamic counts the buckets of each wildcard descriptor (by descriptor key).
	dynMu sync.Mutex
	dyn   map[string]map[string]struct{}
}

type shard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

func newBuckets() *buckets {
	b := &buckets{seed: maphash.MakeSeed(), dyn: map[string]map[string]struct{}{}}
	for i := range b.shards {
		b.shards[i].m = map[string]*bucket{}
	}
	return b
}

func (bs *buckets) shard(key string) *shard {
	return &bs.shards[maphash.String(bs.seed, key)%shards]
}

// get returns the bucket of key, making it with cfg when missing.
func (bs *buckets) get(key string, cfg runtime.TokenBucket, now time.Time) *bucket {
	s := bs.shard(key)
	s.mu.Lock()
	b := s.m[key]
	if b == nil || b.cfg != cfg {
		b = newBucket(cfg, now)
		s.m[key] = b
	}
	s.mu.Unlock()
	return b
}

// getDynamic returns the bucket of a wildcard descriptor's value (key is the
// descriptor's key and the values), keeping at most max buckets for the descriptor:
// beyond, full buckets are dropped, else any one.
func (bs *buckets) getDynamic(descKey string, kb []byte, cfg runtime.TokenBucket, max uint32, now time.Time) *bucket {
	s := &bs.shards[maphash.Bytes(bs.seed, kb)%shards]
	s.mu.Lock()
	b := s.m[string(kb)] // no allocation for the lookup
	s.mu.Unlock()
	if b != nil && b.cfg == cfg {
		return b
	}
	key := string(kb)
	bs.dynMu.Lock()
	set := bs.dyn[descKey]
	if set == nil {
		set = map[string]struct{}{}
		bs.dyn[descKey] = set
	}
	if uint32(len(set)) >= max {
		bs.evict(set, now, max)
	}
	set[key] = struct{}{}
	bs.dynMu.Unlock()
	return bs.get(key, cfg, now)
}

// evict drops full buckets of set, then arbitrary ones, until it has room.
func (bs *buckets) evict(set map[string]struct{}, now time.Time, max uint32) {
	for k := range set {
		s := bs.shard(k)
		s.mu.Lock()
		if b := s.m[k]; b == nil || b.full(now) {
			delete(s.m, k)
			delete(set, k)
		}
		s.mu.Unlock()
	}
	for k := range set {
		if uint32(len(set)) < max {
			return
		}
		s := bs.shard(k)
		s.mu.Lock()
		delete(s.m, k)
		s.mu.Unlock()
		delete(set, k)
	}
}

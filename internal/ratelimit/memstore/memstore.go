package memstore

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// shards is the number of independently locked maps.
const shards = 64

// sweepEvery is how often, at most, a shard is swept of expired counters.
const sweepEvery = time.Second

// Store is an in-memory counter store. The zero value is not usable; call New.
type Store struct {
	seed   maphash.Seed
	now    func() time.Time
	shards [shards]shard
}

type shard struct {
	mu        sync.Mutex
	counters  map[string]counter
	lastSweep time.Time
	_         [24]byte // keep shards on separate cache lines
}

type counter struct {
	value   uint64
	expires time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store read time from now (for tests); default time.Now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{seed: maphash.MakeSeed(), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	for i := range s.shards {
		s.shards[i].counters = map[string]counter{}
	}
	return s
}

// Increment adds hits to the counter key, creating it with a lifetime of ttl, and
// returns its new value. It never fails.
func (s *Store) Increment(_ context.Context, key string, hits uint64, ttl time.Duration) (uint64, error) {
	now := s.now()
	sh := &s.shards[maphash.String(s.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c, ok := sh.counters[key]
	if !ok || !now.Before(c.expires) {
		if now.Sub(sh.lastSweep) >= sweepEvery {
			sh.sweep(now)
		}
		c = counter{expires: now.Add(ttl)}
	}
	c.value += hits
	sh.counters[key] = c
	return c.value, nil
}

// sweep drops the shard's expired counters. sh.mu must be held.
func (sh *shard) sweep(now time.Time) {
	for k, c := range sh.counters {
		if !now.Before(c.expires) {
			delete(sh.counters, k)
		}
	}
	sh.lastSweep = now
}

// Len is the number of counters held, expired ones not yet swept included.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.counters)
		sh.mu.Unlock()
	}
	return n
}

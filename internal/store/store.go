package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"trellis.dev/trellis/internal/config"
)

// Snapshot is the merged configuration at one version. It is immutable once published:
// never modify it or anything it points to.
type Snapshot struct {
	// Version increases by one with every change; the empty store is version 0.
	Version uint64
	// Config is every source's objects, sorted; never nil.
	Config *config.Set
	// Errors are the objects defined by more than one source; each names the position
	// of the definition that was dropped and of the one that is used.
	Errors []*config.Error
}

// Store is the typed, versioned config store. The zero value is not usable; call New.
type Store struct {
	mu          sync.Mutex // serialises changes to the fields below and publishing
	sources     map[string]*source
	added       uint64 // sources ever added; orders them
	subscribers map[chan struct{}]struct{}
	fingerprint [sha256.Size]byte // of the current snapshot's content

	current atomic.Pointer[Snapshot]
}

// source is what one source last gave the store.
type source struct {
	order       uint64 // when the source was added: earlier sources win conflicts
	set         *config.Set
	fingerprint [sha256.Size]byte
}

// New returns an empty store at version 0.
func New() *Store {
	s := &Store{sources: map[string]*source{}, subscribers: map[chan struct{}]struct{}{}}
	empty := &Snapshot{Config: &config.Set{}}
	s.fingerprint = fingerprint(empty)
	s.current.Store(empty)
	return s
}

// Replace makes set everything that the named source (such as a file path) holds. The
// version is bumped, and subscribers signalled, only if the merged content changed.
// A nil set is an empty one. The store keeps set: do not modify it afterwards.
func (s *Store) Replace(name string, set *config.Set) {
	if set == nil {
		set = &config.Set{}
	}
	fp := fingerprint(set)
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.sources[name]; ok {
		if src.fingerprint == fp {
			return
		}
		src.set, src.fingerprint = set, fp
	} else {
		s.added++
		s.sources[name] = &source{order: s.added, set: set, fingerprint: fp}
	}
	s.publish()
}

// Remove drops everything the named source holds. Removing an unknown source does
// nothing.
func (s *Store) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sources[name]; !ok {
		return
	}
	delete(s.sources, name)
	s.publish()
}

// Snapshot is the current merged configuration. It is cheap: no copying, no locking.
func (s *Store) Snapshot() Snapshot { return *s.current.Load() }

// Subscribe returns a channel that receives a value after every change, and a func
// that unsubscribes. Signals are coalesced (the channel holds at most one): on each
// one, read Snapshot. To miss nothing, subscribe first and then read Snapshot once.
// The channel is never closed.
func (s *Store) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subscribers[ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subscribers, ch)
			s.mu.Unlock()
		})
	}
}

// publish merges the sources into a new snapshot if the result differs from the
// current one, and signals subscribers. s.mu must be held.
func (s *Store) publish() {
	srcs := slices.SortedFunc(maps.Values(s.sources), func(a, b *source) int { return cmp.Compare(a.order, b.order) })
	sets := make([]*config.Set, len(srcs))
	for i, src := range srcs {
		sets[i] = src.set
	}
	merged, conflicts := config.Combine(sets...)
	next := &Snapshot{Version: s.current.Load().Version + 1, Config: merged, Errors: conflicts}
	fp := fingerprint(next)
	if fp == s.fingerprint {
		return
	}
	s.fingerprint = fp
	s.current.Store(next)
	for ch := range s.subscribers {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

// fingerprint is a digest of the content of a Set or of a snapshot's Config and Errors
// (not its Version). encoding/json writes map keys sorted, so equal content gives an
// equal digest.
func fingerprint(v any) [sha256.Size]byte {
	if snap, ok := v.(*Snapshot); ok {
		v = struct {
			Config *config.Set
			Errors []*config.Error
		}{snap.Config, snap.Errors}
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Not reachable with config's types; a digest of the error still differs from
		// any valid content, so the change is published.
		buf.WriteString(err.Error())
	}
	return sha256.Sum256(buf.Bytes())
}

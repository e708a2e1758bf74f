package ca_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/identity"
)

// memStorage is a ca.Storage in memory that, like a Kubernetes Secret, refuses a Save
// based on a stale Load.
type memStorage struct {
	mu      sync.Mutex
	root    *ca.StoredRoot
	version int
	saves   int
}

// handle is one replica's view: the version it last loaded or saved.
type handle struct {
	s    *memStorage
	seen int
}

var errStale = errors.New("stored root changed since it was loaded")

func (h *handle) Load() (ca.StoredRoot, bool, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.seen = h.s.version
	if h.s.root == nil {
		return ca.StoredRoot{}, false, nil
	}
	return *h.s.root, true, nil
}

func (h *handle) Save(r ca.StoredRoot) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.seen != h.s.version {
		return errStale
	}
	h.s.root = &r
	h.s.version++
	h.s.saves++
	h.seen = h.s.version
	return nil
}

func TestStorage(t *testing.T) {
	clk := newClock()
	store := &memStorage{}
	cfg := func() ca.Config {
		return ca.Config{Storage: &handle{s: store}, CertTTL: time.Hour, Logger: testLogger(t), Now: clk.Now}
	}
	first, err := ca.New(cfg())
	if err != nil {
		t.Fatalf("New (creates): %v", err)
	}
	if store.saves != 1 {
		t.Fatalf("saves after the first New = %d, want 1", store.saves)
	}
	second, err := ca.New(cfg())
	if err != nil {
		t.Fatalf("New (loads): %v", err)
	}
	if store.saves != 1 {
		t.Errorf("the second New saved: saves = %d, want 1", store.saves)
	}
	if diff := cmp.Diff(fingerprints(first.TrustBundle()), fingerprints(second.TrustBundle())); diff != "" {
		t.Fatalf("replicas disagree on the bundle (-first +second):\n%s", diff)
	}
	// A certificate one replica signs verifies against the other's bundle.
	chain, err := first.Sign(newCSR(t, newKey(t), nil, nil), identity.New("default", "reviews"), 0)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	verify(t, chain, second.TrustBundle(), clk.Now())

	// The first rotates; the second picks the new root up with Reload.
	if err := first.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	changed, err := second.Reload()
	if err != nil || !changed {
		t.Fatalf("Reload after Rotate = %v, %v; want true, nil", changed, err)
	}
	if diff := cmp.Diff(fingerprints(first.TrustBundle()), fingerprints(second.TrustBundle())); diff != "" {
		t.Errorf("bundles after Reload (-first +second):\n%s", diff)
	}
	if changed, err := second.Reload(); err != nil || changed {
		t.Errorf("second Reload = %v, %v; want false, nil", changed, err)
	}
	// A replica that did not reload cannot overwrite the rotation.
	third := &handle{s: store, seen: 1}
	if err := third.Save(ca.StoredRoot{}); !errors.Is(err, errStale) {
		t.Errorf("stale Save = %v, want %v", err, errStale)
	}
}

func TestReloadNeedsStorage(t *testing.T) {
	authority, err := ca.New(ca.Config{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authority.Reload(); !errors.Is(err, ca.ErrNoStorage) {
		t.Errorf("Reload without Storage = %v, want ErrNoStorage", err)
	}
}

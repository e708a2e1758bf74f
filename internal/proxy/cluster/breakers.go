package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// ErrOverflow is returned when a circuit breaker refuses a request: the answer is 503
// with response flag UO.
var ErrOverflow = errors.New("upstream overflow")

// Breakers are the circuit breakers of one cluster, with Envoy's meaning:
//
//   - max_requests bounds the requests in flight to the cluster;
//   - max_connections bounds the HTTP/1.1 connections in use (one request each); a
//     request that finds them all busy waits for one as a pending request, and
//     max_pending_requests bounds those;
//   - max_retries bounds the retries in flight, or, when a retry budget is set, the
//     retries may be at most a share of the requests in flight (at least a minimum).
//
// Counters survive configuration changes; the thresholds are swapped atomically.
type Breakers struct {
	th atomic.Pointer[runtime.Thresholds]

	requests atomic.Int64
	retries  atomic.Int64

	mu      sync.Mutex // guards conns, pending and waiters
	conns   int64
	pending int64
	waiters []chan struct{}
}

func newBreakers(th runtime.Thresholds) *Breakers {
	b := &Breakers{}
	b.th.Store(&th)
	return b
}

func (b *Breakers) setThresholds(th runtime.Thresholds) {
	b.th.Store(&th)
	// A higher connection limit may admit waiting requests now.
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.waiters) > 0 && b.conns < th.MaxConnections {
		b.handOff()
	}
}

// StartRequest admits a request under max_requests; when it returns true, the caller
// must call EndRequest when the request is over.
func (b *Breakers) StartRequest() bool {
	if b.requests.Add(1) > b.th.Load().MaxRequests {
		b.requests.Add(-1)
		return false
	}
	return true
}

// EndRequest ends what StartRequest admitted.
func (b *Breakers) EndRequest() { b.requests.Add(-1) }

// Requests returns the requests in flight.
func (b *Breakers) Requests() int64 { return b.requests.Load() }

// AcquireConn takes one of the max_connections connection slots for an HTTP/1.1
// attempt, waiting as a pending request when all are busy. It fails with ErrOverflow
// when max_pending_requests are already waiting, or with ctx's error. ReleaseConn
// gives the slot back (to the longest-waiting request, if any).
func (b *Breakers) AcquireConn(ctx context.Context) error {
	th := b.th.Load()
	b.mu.Lock()
	if b.conns < th.MaxConnections && len(b.waiters) == 0 {
		b.conns++
		b.mu.Unlock()
		return nil
	}
	if b.pending >= th.MaxPendingRequests {
		b.mu.Unlock()
		return ErrOverflow
	}
	ready := make(chan struct{})
	b.waiters = append(b.waiters, ready)
	b.pending++
	b.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		for i, w := range b.waiters {
			if w == ready {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				b.pending--
				return ctx.Err()
			}
		}
		// The slot was handed over as ctx ended: pass it on.
		b.releaseLocked()
		return ctx.Err()
	}
}

// ReleaseConn gives back a slot AcquireConn took.
func (b *Breakers) ReleaseConn() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked()
}

func (b *Breakers) releaseLocked() {
	b.conns--
	if len(b.waiters) > 0 && b.conns < b.th.Load().MaxConnections {
		b.handOff()
	}
}

// handOff gives a connection slot to the longest-waiting request. Call with mu held.
func (b *Breakers) handOff() {
	w := b.waiters[0]
	b.waiters = b.waiters[1:]
	b.pending--
	b.conns++
	close(w)
}

// Pending returns the requests waiting for a connection.
func (b *Breakers) Pending() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending
}

// StartRetry admits a retry under max_retries or the retry budget; when it returns
// true, the caller must call EndRetry when the retry is over.
func (b *Breakers) StartRetry() bool {
	th := b.th.Load()
	limit := th.MaxRetries
	if rb := th.RetryBudget; rb != nil {
		active := b.requests.Load() + b.Pending()
		limit = max(rb.MinRetryConcurrency, int64(rb.BudgetPercent/100*float64(active)))
	}
	if b.retries.Add(1) > limit {
		b.retries.Add(-1)
		return false
	}
	return true
}

// EndRetry ends what StartRetry admitted.
func (b *Breakers) EndRetry() { b.retries.Add(-1) }

package dashboard

import (
	"sync"
	"time"
)

// round is what every sidecar counted between two scrapes: the increase of each
// series, summed over the sidecars. A round is never modified once added.
type round struct {
	at     time.Time
	span   time.Duration // since the previous round
	deltas map[seriesKey]*counts
}

// history keeps the rounds of the last Retention, and the last scrape of each
// sidecar to take increases from. Memory is bounded by the number of rounds
// (Retention / ScrapeInterval) times MaxSeries.
type history struct {
	retention time.Duration
	maxSeries int

	mu       sync.RWMutex // guards everything below
	rounds   []round      // oldest first
	bounds   []float64    // latency bucket bounds (ms) of the rounds' histograms
	prev     map[string]*snapshot
	lastAt   time.Time
	overflow uint64 // series increases dropped because a round was full
}

func newHistory(retention time.Duration, maxSeries int) *history {
	return &history{retention: retention, maxSeries: maxSeries, prev: map[string]*snapshot{}}
}

// add records a scrape round at time at: snaps are the sidecars scraped (by node
// ID), alive every registered sidecar (a sidecar whose scrape failed keeps its last
// snapshot; one that is gone loses it).
//
// A sidecar's first snapshot is its increase when the sidecar appeared after the
// first round: it registered (and began to count, as it serves only once
// configured) within the last interval. In the first round, when the dashboard
// starts beside sidecars that have been counting for who knows how long, it is only
// a baseline, and the round covers no time.
func (h *history) add(at time.Time, snaps map[string]*snapshot, alive map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for node := range h.prev {
		if !alive[node] {
			delete(h.prev, node)
		}
	}
	deltas := map[seriesKey]*counts{}
	for node, cur := range snaps {
		if h.bounds == nil && cur.bounds != nil {
			h.bounds = cur.bounds
		}
		sameBounds := equalBounds(h.bounds, cur.bounds)
		prev, known := h.prev[node]
		h.prev[node] = cur
		if !known {
			if h.lastAt.IsZero() {
				continue
			}
			prev = &snapshot{}
		}
		for k, c := range cur.series {
			d := c
			if p, ok := prev.series[k]; ok {
				d = c.sub(p)
			}
			if d.zero() {
				continue
			}
			if !sameBounds {
				d = &counts{requests: d.requests, failures: d.failures}
			}
			sum, ok := deltas[k]
			if !ok {
				if len(deltas) >= h.maxSeries {
					h.overflow++
					continue
				}
				sum = &counts{}
				deltas[k] = sum
			}
			sum.add(d)
		}
	}
	var span time.Duration
	if !h.lastAt.IsZero() {
		span = at.Sub(h.lastAt)
	}
	h.lastAt = at
	h.rounds = append(h.rounds, round{at: at, span: span, deltas: deltas})
	cut := 0
	for cut < len(h.rounds) && h.rounds[cut].at.Before(at.Add(-h.retention)) {
		cut++
	}
	if cut > 0 {
		h.rounds = append(h.rounds[:0:0], h.rounds[cut:]...)
	}
}

// since returns the rounds after t (shared: read only) and the histogram bounds.
func (h *history) since(t time.Time) ([]round, []float64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	i := len(h.rounds)
	for i > 0 && h.rounds[i-1].at.After(t) {
		i--
	}
	return h.rounds[i:], h.bounds
}

// window sums the rounds after t: the increase of every series, and the time they
// cover.
func (h *history) window(t time.Time) (map[seriesKey]*counts, time.Duration, []float64) {
	rounds, bounds := h.since(t)
	total := map[seriesKey]*counts{}
	var span time.Duration
	for _, r := range rounds {
		span += r.span
		for k, c := range r.deltas {
			sum, ok := total[k]
			if !ok {
				sum = &counts{}
				total[k] = sum
			}
			sum.add(c)
		}
	}
	return total, span, bounds
}

// Overflow is how many series increases were dropped because a round held
// MaxSeries series already.
func (h *history) Overflow() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.overflow
}

package lb

import "testing"

func TestLeastRequestPrefersIdle(t *testing.T) {
	tests := []struct {
		name     string
		active   []int64
		choices  int
		wantIdle float64 // minimum share of picks for the idle endpoint e0
	}{
		// With two endpoints both draws see both often: the idle one wins whenever the
		// draws differ (half the time) and ties otherwise: 75% expected.
		{name: "two, power of two", active: []int64{0, 5}, choices: 2, wantIdle: 0.65},
		// With choice_count equal to many draws, the idle one almost always wins.
		{name: "two, five choices", active: []int64{0, 5}, choices: 5, wantIdle: 0.9},
		{name: "four, one idle", active: []int64{0, 3, 3, 3}, choices: 2, wantIdle: 0.35},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps := endpoints(len(tt.active))
			for i, a := range tt.active {
				eps[i].active.Store(a)
			}
			lr := NewLeastRequest(NewSet(eps, 50, nil), tt.choices)
			const n = 2000
			got := count(lr, Request{}, n)
			if share := float64(got["e0:1"]) / n; share < tt.wantIdle {
				t.Errorf("idle endpoint got %.2f of picks (%v), want at least %.2f", share, got, tt.wantIdle)
			}
			// A random pick would give the idle endpoint 1/len; least request must beat it.
			if got["e0:1"] <= n/len(tt.active) {
				t.Errorf("idle endpoint got %d of %d picks: no better than random", got["e0:1"], n)
			}
		})
	}
}

func TestLeastRequestBeginEnd(t *testing.T) {
	eps := endpoints(2)
	lr := NewLeastRequest(NewSet(eps, 50, nil), 2)
	// Requests that never end pile up; least request must spread them evenly.
	for range 100 {
		lr.Pick(Request{}).Begin()
	}
	a, b := eps[0].Active(), eps[1].Active()
	if d := a - b; d > 10 || d < -10 {
		t.Errorf("active %d and %d: not balanced", a, b)
	}
}

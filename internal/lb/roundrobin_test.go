package lb

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundRobin(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		picks int
		want  map[string]int
	}{
		{name: "empty", n: 0, picks: 3, want: map[string]int{"": 3}},
		{name: "one", n: 1, picks: 3, want: map[string]int{"e0:1": 3}},
		{name: "two even", n: 2, picks: 10, want: map[string]int{"e0:1": 5, "e1:1": 5}},
		{name: "three", n: 3, picks: 9, want: map[string]int{"e0:1": 3, "e1:1": 3, "e2:1": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := NewRoundRobin(NewSet(endpoints(tt.n), 50, nil))
			if diff := cmp.Diff(tt.want, count(rr, Request{}, tt.picks)); diff != "" {
				t.Errorf("picks (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	rr := NewRoundRobin(NewSet(endpoints(2), 50, nil))
	first := rr.Pick(Request{})
	for i := range 6 {
		got := rr.Pick(Request{})
		if (got == first) != (i%2 == 1) {
			t.Fatalf("pick %d = %s after first %s: not alternating", i+1, got.Addr, first.Addr)
		}
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	rr := NewRoundRobin(NewSet(endpoints(4), 50, nil))
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			local := count(rr, Request{}, 1000)
			mu.Lock()
			defer mu.Unlock()
			for k, v := range local {
				got[k] += v
			}
		})
	}
	wg.Wait()
	want := map[string]int{"e0:1": 1000, "e1:1": 1000, "e2:1": 1000, "e3:1": 1000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("picks (-want +got):\n%s", diff)
	}
}

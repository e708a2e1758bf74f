package lb

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundRobin(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		picks int
		want  map[string]int
	}{
		{name: "empty", addrs: nil, picks: 3, want: map[string]int{}},
		{name: "one", addrs: []string{"a:1"}, picks: 3, want: map[string]int{"a:1": 3}},
		{name: "two even", addrs: []string{"a:1", "b:2"}, picks: 10, want: map[string]int{"a:1": 5, "b:2": 5}},
		{name: "three", addrs: []string{"a:1", "b:2", "c:3"}, picks: 9, want: map[string]int{"a:1": 3, "b:2": 3, "c:3": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := NewRoundRobin(tt.addrs)
			got := map[string]int{}
			for range tt.picks {
				addr, ok := rr.Pick()
				if !ok {
					continue
				}
				got[addr]++
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("picks (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	rr := NewRoundRobin([]string{"a:1", "b:2"})
	first, _ := rr.Pick()
	for i := range 6 {
		got, _ := rr.Pick()
		if (got == first) != (i%2 == 1) {
			t.Fatalf("pick %d = %s after first %s: not alternating", i+1, got, first)
		}
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	rr := NewRoundRobin([]string{"a:1", "b:2", "c:3", "d:4"})
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			local := map[string]int{}
			for range 1000 {
				addr, _ := rr.Pick()
				local[addr]++
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range local {
				got[k] += v
			}
		})
	}
	wg.Wait()
	want := map[string]int{"a:1": 1000, "b:2": 1000, "c:3": 1000, "d:4": 1000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("picks (-want +got):\n%s", diff)
	}
}

func BenchmarkRoundRobinPick(b *testing.B) {
	rr := NewRoundRobin([]string{"a:1", "b:2", "c:3"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rr.Pick()
		}
	})
}

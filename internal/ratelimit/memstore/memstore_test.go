package memstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a clock that tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestIncrement(t *testing.T) {
	type step struct {
		key     string
		hits    uint64
		advance time.Duration // before the step
		want    uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name:  "counts",
			steps: []step{{key: "a", hits: 1, want: 1}, {key: "a", hits: 1, want: 2}, {key: "a", hits: 5, want: 7}},
		},
		{
			name:  "keys are separate",
			steps: []step{{key: "a", hits: 1, want: 1}, {key: "b", hits: 1, want: 1}, {key: "a", hits: 1, want: 2}},
		},
		{
			name: "expires ttl after creation",
			steps: []step{
				{key: "a", hits: 1, want: 1},
				{key: "a", hits: 1, advance: 59 * time.Second, want: 2},
				{key: "a", hits: 1, advance: time.Second, want: 1},
			},
		},
		{
			name:  "zero hits reads",
			steps: []step{{key: "a", hits: 3, want: 3}, {key: "a", hits: 0, want: 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			clock := &fakeClock{}
			clock.advance(time.Hour)
			s := New(WithClock(clock.now))
			var got, want []uint64
			for _, st := range tt.steps {
				clock.advance(st.advance)
				n, err := s.Increment(ctx, st.key, st.hits, time.Minute)
				if err != nil {
					t.Fatalf("Increment: %v", err)
				}
				got, want = append(got, n), append(want, st.want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clock := &fakeClock{}
	s := New(WithClock(clock.now))
	for i := range 1000 {
		s.Increment(ctx, fmt.Sprint("old-", i), 1, time.Second)
	}
	if got := s.Len(); got != 1000 {
		t.Fatalf("Len = %d, want 1000", got)
	}
	clock.advance(2 * time.Second)
	for i := range 1000 { // new counters sweep every shard they land in
		s.Increment(ctx, fmt.Sprint("new-", i), 1, time.Second)
	}
	if got := s.Len(); got != 1000 {
		t.Errorf("after the old counters expired, Len = %d, want 1000", got)
	}
}

func TestConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := New()
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	var max atomic.Uint64
	for range workers {
		wg.Go(func() {
			for range each {
				n, _ := s.Increment(ctx, "shared", 1, time.Minute)
				for m := max.Load(); n > m && !max.CompareAndSwap(m, n); m = max.Load() {
				}
			}
		})
	}
	wg.Wait()
	if got := max.Load(); got != workers*each {
		t.Errorf("highest count %d, want %d", got, workers*each)
	}
}

func BenchmarkIncrement(b *testing.B) {
	ctx := context.Background()
	s := New()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("trellis-rl:trellis:shop/checkout/1:29000000:5:user", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Increment(ctx, keys[i%len(keys)], 1, time.Minute)
			i++
		}
	})
}

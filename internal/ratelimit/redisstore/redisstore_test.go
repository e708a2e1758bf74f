package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"trellis.dev/trellis/internal/ratelimit/internal/redistest"
	"trellis.dev/trellis/internal/ratelimit/redisstore"
)

func newStore(t testing.TB, addr string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(redisstore.Config{Addr: addr})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestIncrement(t *testing.T) {
	srv := redistest.Start(t)
	type step struct {
		key  string
		hits uint64
		want uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "counts", steps: []step{{"a", 1, 1}, {"a", 1, 2}, {"a", 5, 7}}},
		{name: "keys are separate", steps: []step{{"b", 1, 1}, {"c", 1, 1}, {"b", 1, 2}}},
		{name: "zero hits reads", steps: []step{{"d", 3, 3}, {"d", 0, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s := newStore(t, srv.Addr)
			var got, want []uint64
			for _, st := range tt.steps {
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

func TestTTL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	peek := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer peek.Close()

	if _, err := s.Increment(ctx, "k", 1, time.Minute); err != nil {
		t.Fatalf("Increment: %v", err)
	}
	first, err := peek.PTTL(ctx, "k").Result()
	if err != nil || first <= 50*time.Second || first > time.Minute {
		t.Fatalf("after the first hit PTTL = %v, %v; want about a minute", first, err)
	}
	if _, err := s.Increment(ctx, "k", 1, 10*time.Minute); err != nil {
		t.Fatalf("Increment: %v", err)
	}
	if again, _ := peek.PTTL(ctx, "k").Result(); again > first {
		t.Errorf("a later hit extended the lifetime from %v to %v", first, again)
	}

	// A short-lived counter disappears, and counting starts again.
	if _, err := s.Increment(ctx, "short", 4, 200*time.Millisecond); err != nil {
		t.Fatalf("Increment: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, err := peek.Exists(ctx, "short").Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the counter did not expire")
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	if n, err := s.Increment(ctx, "short", 1, time.Minute); err != nil || n != 1 {
		t.Errorf("after expiry Increment = %d, %v; want 1", n, err)
	}
}

// TestReplicasShareCounters increments one counter from two stores (two replicas of the
// service) concurrently: no hit is lost.
func TestReplicasShareCounters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := redistest.Start(t)
	stores := []*redisstore.Store{newStore(t, srv.Addr), newStore(t, srv.Addr)}
	const perWorker, workersPerStore = 200, 4
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*workersPerStore)
	for _, s := range stores {
		for range workersPerStore {
			wg.Go(func() {
				for range perWorker {
					if _, err := s.Increment(ctx, "shared", 1, time.Minute); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Increment: %v", err)
	}
	n, err := stores[0].Increment(ctx, "shared", 0, time.Minute)
	if want := uint64(len(stores) * workersPerStore * perWorker); err != nil || n != want {
		t.Errorf("count = %d, %v; want %d", n, err, want)
	}
}

func TestRedisDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := redistest.Start(t)
	s := newStore(t, srv.Addr)
	if _, err := s.Increment(ctx, "k", 1, time.Minute); err != nil {
		t.Fatalf("Increment: %v", err)
	}
	srv.Stop()
	start := time.Now()
	_, err := s.Increment(ctx, "k", 1, time.Minute)
	if err == nil {
		t.Fatal("Increment with Redis stopped succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Increment with Redis stopped took %v", took)
	}
	t.Logf("error with Redis stopped: %v", err)

	srv.Restart() // no persistence: counting starts again
	var n uint64
	for deadline := time.Now().Add(10 * time.Second); ; {
		if n, err = s.Increment(ctx, "k", 1, time.Minute); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis restarted, Increment still fails: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	if n != 1 {
		t.Errorf("after the restart the count is %d, want 1", n)
	}
}

func BenchmarkIncrement(b *testing.B) {
	srv := redistest.Start(b)
	s := newStore(b, srv.Addr)
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("trellis-rl:trellis:shop/checkout/1:29000000:5:user", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Increment(ctx, keys[i%len(keys)], 1, time.Minute); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

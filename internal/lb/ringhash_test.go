package lb

import (
	"fmt"
	"testing"
)

func TestRingHashSticks(t *testing.T) {
	eps := endpoints(5)
	rh := NewRingHash(NewSet(eps, 50, nil), 0)
	owners := map[string]string{}
	for i := range 200 {
		key := fmt.Sprintf("user-%d", i)
		req := Request{Hash: HashString(key), HasHash: true}
		first := rh.Pick(req)
		for range 5 {
			if got := rh.Pick(req); got != first {
				t.Fatalf("key %s went to %s then %s", key, first.Addr, got.Addr)
			}
		}
		owners[key] = first.Addr
	}
	perEndpoint := map[string]int{}
	for _, a := range owners {
		perEndpoint[a]++
	}
	if len(perEndpoint) != 5 {
		t.Errorf("keys landed on %v; want all five endpoints", perEndpoint)
	}

	// Removing one endpoint moves its keys and few others (the remaining endpoints
	// get more points each, which moves some keys between them).
	rh2 := NewRingHash(NewSet(eps[:4], 50, nil), 0)
	stayed, moved := 0, 0
	for key, owner := range owners {
		if owner == eps[4].Addr {
			continue
		}
		if rh2.Pick(Request{Hash: HashString(key), HasHash: true}).Addr == owner {
			stayed++
		} else {
			moved++
		}
	}
	if moved*5 > stayed+moved {
		t.Errorf("%d of %d keys moved though their endpoint stayed", moved, stayed+moved)
	}
}

func TestRingHashSkipsEjectedOwner(t *testing.T) {
	eps := endpoints(3)
	req := Request{Hash: HashString("k"), HasHash: true}
	owner := NewRingHash(NewSet(eps, 0, nil), 0).Pick(req)
	idx := 0
	for i, ep := range eps {
		if ep == owner {
			idx = i
		}
	}
	rh := NewRingHash(ejectedSet(eps, 0, idx), 0)
	got := rh.Pick(req)
	if got == nil || got == owner {
		t.Fatalf("picked %v with owner %s ejected", got, owner.Addr)
	}
	for range 10 {
		if again := rh.Pick(req); again != got {
			t.Fatalf("fallback not stable: %s then %s", got.Addr, again.Addr)
		}
	}
}

func BenchmarkHashString(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		HashString("session-0123456789abcdef")
	}
}

package lb

import "testing"

func TestRandomSpreads(t *testing.T) {
	r := NewRandom(NewSet(endpoints(4), 50, nil))
	const n = 4000
	got := count(r, Request{}, n)
	for addr, c := range got {
		if c < n/4/2 || c > n/4*3/2 {
			t.Errorf("%s picked %d of %d times; want about %d", addr, c, n, n/4)
		}
	}
	if len(got) != 4 {
		t.Errorf("picked %v, want all four", got)
	}
}

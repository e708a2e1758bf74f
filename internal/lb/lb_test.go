package lb

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// endpoints returns n endpoints named e0:1 ... e<n-1>:1.
func endpoints(n int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = NewEndpoint(fmt.Sprintf("e%d:1", i))
	}
	return eps
}

// count picks n times and counts the addresses picked ("" for nil).
func count(p Picker, req Request, n int) map[string]int {
	got := map[string]int{}
	for range n {
		if ep := p.Pick(req); ep != nil {
			got[ep.Addr]++
		} else {
			got[""]++
		}
	}
	return got
}

// ejectedSet is a set over eps where the endpoints at indices ej are ejected.
func ejectedSet(eps []*Endpoint, panicThreshold float64, ej ...int) *Set {
	n := new(atomic.Int32)
	for _, i := range ej {
		eps[i].ejected.Store(true)
		n.Add(1)
	}
	return NewSet(eps, panicThreshold, n)
}

// pickers builds every policy over a set, for tests that hold for all of them.
var pickers = []struct {
	name string
	new  func(*Set) Picker
}{
	{"round robin", func(s *Set) Picker { return NewRoundRobin(s) }},
	{"random", func(s *Set) Picker { return NewRandom(s) }},
	{"least request", func(s *Set) Picker { return NewLeastRequest(s, 2) }},
	{"ring hash", func(s *Set) Picker { return NewRingHash(s, 64) }},
}

func TestPickersSkipEjectedAndTried(t *testing.T) {
	for _, p := range pickers {
		t.Run(p.name, func(t *testing.T) {
			tests := []struct {
				name   string
				set    func() (*Set, []*Endpoint)
				req    func(eps []*Endpoint) Request
				want   string // the only address that may be picked; "" for nil
				wantOK bool
			}{
				{name: "empty", set: func() (*Set, []*Endpoint) { return NewSet(nil, 50, nil), nil },
					req: func([]*Endpoint) Request { return Request{} }, want: ""},
				{name: "two ejected of three, panic mode off", set: func() (*Set, []*Endpoint) {
					eps := endpoints(3)
					return ejectedSet(eps, 0, 0, 1), eps
				}, req: func([]*Endpoint) Request { return Request{} }, want: "e2:1"},
				{name: "all ejected, no panic mode", set: func() (*Set, []*Endpoint) {
					eps := endpoints(2)
					return ejectedSet(eps, 0, 0, 1), eps
				}, req: func([]*Endpoint) Request { return Request{} }, want: ""},
				{name: "tried avoided", set: func() (*Set, []*Endpoint) {
					eps := endpoints(2)
					return NewSet(eps, 50, nil), eps
				}, req: func(eps []*Endpoint) Request { return Request{Tried: eps[:1], Hash: 7, HasHash: true} }, want: "e1:1"},
				{name: "tried reused when nothing else", set: func() (*Set, []*Endpoint) {
					eps := endpoints(1)
					return NewSet(eps, 50, nil), eps
				}, req: func(eps []*Endpoint) Request { return Request{Tried: eps} }, want: "e0:1"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					set, eps := tt.set()
					got := count(p.new(set), tt.req(eps), 50)
					if len(got) != 1 || got[tt.want] != 50 {
						t.Errorf("picked %v, want only %q", got, tt.want)
					}
				})
			}
		})
	}
}

func TestPanicModeUsesAll(t *testing.T) {
	for _, p := range pickers {
		t.Run(p.name, func(t *testing.T) {
			eps := endpoints(4)
			set := ejectedSet(eps, 50, 0, 1, 2) // 25% healthy < 50%
			got := count(p.new(set), Request{}, 400)
			if len(got) < 2 || got[""] > 0 {
				t.Errorf("picked %v, want several endpoints in panic mode", got)
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	for _, p := range pickers {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				picker := p.new(NewSet(endpoints(n), 50, nil))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var h uint64
					for pb.Next() {
						h++
						picker.Pick(Request{Hash: h * 0x9e3779b97f4a7c15, HasHash: true})
					}
				})
			})
		}
	}
}

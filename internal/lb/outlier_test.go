package lb

import (
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestOutlier(t *testing.T) {
	fail := Result{Status: 500}
	gw := Result{Status: 503}
	local := Result{LocalFailure: true}
	ok := Result{Status: 200}
	tests := []struct {
		name        string
		cfg         func(*OutlierConfig)
		n           int
		results     []Result // reported on endpoint 0
		wantEjected bool
	}{
		{name: "five 5xx eject", n: 3, results: []Result{fail, fail, fail, fail, fail}, wantEjected: true},
		{name: "four 5xx do not", n: 3, results: []Result{fail, fail, fail, fail}},
		{name: "success resets", n: 3, results: []Result{fail, fail, fail, fail, ok, fail}},
		{name: "local failures count as 5xx", n: 3, results: []Result{local, local, local, local, local}, wantEjected: true},
		{name: "gateway not enforced by default", n: 3, cfg: func(c *OutlierConfig) { c.Consecutive5xx = 0 },
			results: []Result{gw, gw, gw, gw, gw}},
		{name: "gateway enforced", n: 3, cfg: func(c *OutlierConfig) {
			c.Consecutive5xx, c.ConsecutiveGatewayFailure, c.EnforcingGatewayFailure = 0, 2, 100
		}, results: []Result{gw, gw}, wantEjected: true},
		{name: "500 breaks a gateway run", n: 3, cfg: func(c *OutlierConfig) {
			c.Consecutive5xx, c.ConsecutiveGatewayFailure, c.EnforcingGatewayFailure = 0, 2, 100
		}, results: []Result{gw, fail, gw}},
		{name: "5xx not enforced", n: 3, cfg: func(c *OutlierConfig) { c.Enforcing5xx = 0 },
			results: []Result{fail, fail, fail, fail, fail}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := OutlierDefaults()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			eps := endpoints(tt.n)
			o := NewOutlier(cfg, nil)
			o.Update(cfg, eps)
			for _, r := range tt.results {
				o.Report(eps[0], r)
			}
			if got := eps[0].Ejected(); got != tt.wantEjected {
				t.Errorf("ejected = %v, want %v", got, tt.wantEjected)
			}
			if want := int32(map[bool]int{true: 1}[tt.wantEjected]); o.EjectedCount().Load() != want {
				t.Errorf("ejected count = %d, want %d", o.EjectedCount().Load(), want)
			}
		})
	}
}

func TestOutlierEjectionTimeGrowsAndLifts(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	cfg := OutlierDefaults()
	cfg.Consecutive5xx = 1
	cfg.BaseEjectionTime = 10 * time.Second
	eps := endpoints(2)
	o := NewOutlier(cfg, clk.now)
	o.Update(cfg, eps)

	o.Report(eps[0], Result{Status: 500})
	if !eps[0].Ejected() {
		t.Fatal("not ejected")
	}
	clk.advance(9 * time.Second)
	o.Tick()
	if !eps[0].Ejected() {
		t.Fatal("lifted before the base ejection time")
	}
	clk.advance(time.Second)
	if o.Tick() != 1 || eps[0].Ejected() {
		t.Fatal("not lifted after the base ejection time")
	}
	// Second ejection lasts twice as long.
	o.Report(eps[0], Result{Status: 500})
	clk.advance(15 * time.Second)
	o.Tick()
	if !eps[0].Ejected() {
		t.Fatal("second ejection lifted after 1.5 × base")
	}
	clk.advance(5 * time.Second)
	o.Tick()
	if eps[0].Ejected() {
		t.Fatal("second ejection not lifted after 2 × base")
	}
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		maxPercent uint32
		want       int32
	}{
		{name: "default 10% still ejects one", n: 4, maxPercent: 10, want: 1},
		{name: "zero still ejects one", n: 4, maxPercent: 0, want: 1},
		{name: "50% of four", n: 4, maxPercent: 50, want: 2},
		{name: "100% ejects all", n: 3, maxPercent: 100, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := OutlierDefaults()
			cfg.Consecutive5xx = 1
			cfg.MaxEjectionPercent = tt.maxPercent
			eps := endpoints(tt.n)
			o := NewOutlier(cfg, nil)
			o.Update(cfg, eps)
			for _, ep := range eps {
				o.Report(ep, Result{Status: 500})
			}
			if got := o.EjectedCount().Load(); got != tt.want {
				t.Errorf("ejected %d, want %d", got, tt.want)
			}
		})
	}
}

func BenchmarkOutlierReportSuccess(b *testing.B) {
	eps := endpoints(3)
	o := NewOutlier(OutlierDefaults(), nil)
	o.Update(OutlierDefaults(), eps)
	b.ReportAllocs()
	for b.Loop() {
		o.Report(eps[1], Result{Status: 200})
	}
}

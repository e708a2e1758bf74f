package cluster

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/runtime"
)

func testCluster(addrs ...string) *runtime.Cluster {
	return &runtime.Cluster{Name: "c", Endpoints: addrs, Breakers: runtime.DefaultThresholds(), PanicThreshold: 50}
}

func TestStateSurvivesConfigChanges(t *testing.T) {
	m := NewManager(Config{Logger: slog.New(slog.DiscardHandler)})
	defer m.Close()
	c := testCluster("a:1", "b:1")
	c.Outlier = &lb.OutlierConfig{Consecutive5xx: 1, Enforcing5xx: 100, Interval: time.Hour, BaseEjectionTime: time.Hour, MaxEjectionPercent: 50}
	s := m.Sync(map[string]*runtime.Cluster{"c": c})["c"]
	a := s.Endpoints()[0]
	a.Begin()
	s.Report(a, lb.Result{Status: 500})
	if !a.Ejected() {
		t.Fatal("a not ejected")
	}

	// A new table with a new policy, one more endpoint, the same a.
	c2 := testCluster("a:1", "b:1", "c:1")
	c2.Outlier = c.Outlier
	c2.LB.Kind = runtime.LeastRequest
	s2 := m.Sync(map[string]*runtime.Cluster{"c": c2})["c"]
	if s2 != s {
		t.Fatal("state replaced for the same cluster name")
	}
	eps := s2.Endpoints()
	if eps[0] != a || a.Active() != 1 || !a.Ejected() {
		t.Fatalf("endpoint a lost its state: same=%v active=%d ejected=%v", eps[0] == a, a.Active(), a.Ejected())
	}
	for range 50 {
		if got := s2.Pick(lb.Request{}); got == a {
			t.Fatal("ejected endpoint picked")
		}
	}

	// Without outlier detection, the ejection ends.
	s3 := m.Sync(map[string]*runtime.Cluster{"c": testCluster("a:1", "b:1")})["c"]
	if a.Ejected() || s3.Endpoints()[0] != a {
		t.Errorf("ejection survived the removal of outlier detection")
	}

	// A removed cluster's state goes.
	m.Sync(map[string]*runtime.Cluster{})
	if m.State("c") != nil {
		t.Error("state kept for a removed cluster")
	}
}

func TestBreakersPending(t *testing.T) {
	th := runtime.DefaultThresholds()
	th.MaxConnections, th.MaxPendingRequests = 1, 1
	b := newBreakers(th)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := b.AcquireConn(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		err := b.AcquireConn(ctx)
		if err == nil {
			b.ReleaseConn()
		}
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for b.Pending() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("second request never pending")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	if err := b.AcquireConn(ctx); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request: %v, want ErrOverflow", err)
	}
	b.ReleaseConn()
	if err := <-got; err != nil {
		t.Fatalf("pending request: %v, want the released connection", err)
	}

	// A waiter that gives up leaves the queue.
	if err := b.AcquireConn(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if err := b.AcquireConn(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if b.Pending() != 0 {
		t.Errorf("pending %d after the waiter left", b.Pending())
	}
	b.ReleaseConn()
}

func TestBreakersRetryBudget(t *testing.T) {
	th := runtime.DefaultThresholds()
	th.RetryBudget = &runtime.RetryBudget{BudgetPercent: 50, MinRetryConcurrency: 1}
	b := newBreakers(th)
	for range 10 {
		b.StartRequest()
	}
	// 50% of 10 requests in flight: 5 retries at once.
	n := 0
	for b.StartRetry() {
		n++
		if n > 100 {
			break
		}
	}
	if n != 5 {
		t.Errorf("%d retries admitted, want 5", n)
	}
}

type fakeResolver map[string][]string

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestDNSCluster(t *testing.T) {
	m := NewManager(Config{Logger: slog.New(slog.DiscardHandler), Resolver: fakeResolver{"svc": {"127.0.0.2", "127.0.0.1"}}})
	defer m.Close()
	c := testCluster("svc:8080", "missing:80")
	c.DNS, c.DNSRefreshRate = true, time.Hour
	s := m.Sync(map[string]*runtime.Cluster{"c": c})["c"]
	var got []string
	for _, ep := range s.Endpoints() {
		got = append(got, ep.Addr)
	}
	if len(got) != 2 || got[0] != "127.0.0.1:8080" || got[1] != "127.0.0.2:8080" {
		t.Errorf("endpoints %v, want both addresses of svc on 8080", got)
	}
}

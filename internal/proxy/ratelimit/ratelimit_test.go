package ratelimit

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestBucket(t *testing.T) {
	start := time.Unix(1000, 0)
	cfg := runtime.TokenBucket{MaxTokens: 3, TokensPerFill: 2, FillInterval: time.Second}
	tests := []struct {
		name  string
		takes []time.Duration // offsets from start
		want  []bool
	}{
		{name: "burst beyond the tokens", takes: []time.Duration{0, 0, 0, 0}, want: []bool{true, true, true, false}},
		{name: "a fill adds tokens_per_fill", takes: []time.Duration{0, 0, 0, time.Second, time.Second, time.Second}, want: []bool{true, true, true, true, true, false}},
		{name: "fills stop at max_tokens", takes: []time.Duration{0, 10 * time.Second, 10 * time.Second, 10 * time.Second, 10 * time.Second}, want: []bool{true, true, true, true, false}},
		{name: "no fill within an interval", takes: []time.Duration{0, 0, 0, 999 * time.Millisecond}, want: []bool{true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBucket(cfg, start)
			var got []bool
			for _, off := range tt.takes {
				ok, _, _ := b.take(start.Add(off))
				got = append(got, ok)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("takes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBucketConcurrent(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(runtime.TokenBucket{MaxTokens: 1000, TokensPerFill: 1, FillInterval: time.Hour}, now)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if took, _, _ := b.take(now); took {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1000 {
		t.Errorf("%d tokens taken, want exactly 1000", ok.Load())
	}
}

func genericKey(key, value string) runtime.RateLimitAction {
	return runtime.RateLimitAction{Kind: runtime.ActionGenericKey, Key: key, Value: value}
}

func userHeader() runtime.RateLimitAction {
	return runtime.RateLimitAction{Kind: runtime.ActionRequestHeaders, Key: "header.x-user", Header: "X-User"}
}

// localRoute has a 2/minute rule per x-user, and a shadow 1/minute rule for all.
func localRoute() *runtime.Route {
	perUser := runtime.LocalDescriptor{Key: "l\x00user", Wildcard: true,
		Entries: []runtime.DescriptorEntry{{Key: "policy", Value: "ns/p/0"}, {Key: "header.x-user"}},
		Bucket:  runtime.TokenBucket{MaxTokens: 2, TokensPerFill: 2, FillInterval: time.Minute}}
	shadow := runtime.LocalDescriptor{Key: "l\x00all", Shadow: true,
		Entries: []runtime.DescriptorEntry{{Key: "policy", Value: "ns/p/1"}},
		Bucket:  runtime.TokenBucket{MaxTokens: 1, TokensPerFill: 1, FillInterval: time.Minute}}
	return &runtime.Route{LocalRateLimit: &runtime.LocalRateLimit{
		Descriptors: []runtime.LocalDescriptor{perUser, shadow},
		Policies: []runtime.RateLimitPolicy{
			{Actions: []runtime.RateLimitAction{genericKey("policy", "ns/p/0"), userHeader()}},
			{Actions: []runtime.RateLimitAction{genericKey("policy", "ns/p/1")}},
		},
		Enabled: runtime.Fraction{Numerator: 100, Denominator: 100}, Enforced: runtime.Fraction{Numerator: 100, Denominator: 100},
		Headers: true, RetryAfter: true, MaxDynamic: 2,
	}}
}

func TestLocal(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := New(Config{Now: clk.now})
	route := localRoute()
	check := func(user string) Decision {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if user != "" {
			r.Header.Set("X-User", user)
		}
		return l.Check(context.Background(), nil, route, Request{HTTP: r})
	}
	tests := []struct {
		name string
		user string
		want Decision
	}{
		{name: "alice 1", user: "alice", want: Decision{Headers: []Header{{HeaderLimit, "2"}, {HeaderRemaining, "1"}, {HeaderReset, "60"}}}},
		{name: "alice 2", user: "alice", want: Decision{Headers: []Header{{HeaderLimit, "2"}, {HeaderRemaining, "0"}, {HeaderReset, "60"}}}},
		{name: "alice over", user: "alice", want: Decision{Refuse: true, Flag: reqinfo.RateLimited,
			Headers: []Header{{HeaderLimit, "2"}, {HeaderRemaining, "0"}, {HeaderReset, "60"}, {HeaderRetryAfter, "60"}}}},
		{name: "bob has his own bucket", user: "bob", want: Decision{Headers: []Header{{HeaderLimit, "2"}, {HeaderRemaining, "1"}, {HeaderReset, "60"}}}},
		{name: "no header: only the shadow rule, never refused", user: "", want: Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, check(tt.user)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
	if n := l.Stats().LocalShadow.Load(); n == 0 {
		t.Errorf("shadow refusals counted: %d, want some", n)
	}
	// max_dynamic_descriptors is 2: a third user drops a bucket.
	check("carol")
	if n := len(l.buckets.dyn["l\x00user"]); n > 2 {
		t.Errorf("%d dynamic buckets, want at most 2", n)
	}
	clk.add(time.Minute)
	if d := check("alice"); d.Refuse {
		t.Errorf("a minute later: %+v, want allowed", d)
	}
}

// stubRLS answers ShouldRateLimit with the response set, or fails.
type stubRLS struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu   sync.Mutex
	resp *rlsv3.RateLimitResponse
	last *rlsv3.RateLimitRequest
}

func (s *stubRLS) ShouldRateLimit(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = req
	return s.resp, nil
}

// startRLS serves stub on loopback and returns its address.
func startRLS(t testing.TB, stub *stubRLS) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	rlsv3.RegisterRateLimitServiceServer(g, stub)
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return lis.Addr().String()
}

func globalChain(addr string, deny bool) *runtime.FilterChain {
	return &runtime.FilterChain{
		RateLimit:        &runtime.GlobalRateLimit{Domain: "trellis", Cluster: "ratelimit", Timeout: time.Second, FailureModeDeny: deny},
		RateLimitCluster: &runtime.Cluster{Name: "ratelimit", Endpoints: []string{addr}},
	}
}

func globalRoute() *runtime.Route {
	p := runtime.RateLimitPolicy{Actions: []runtime.RateLimitAction{genericKey("policy", "ns/p/0"), userHeader()}}
	return &runtime.Route{RateLimits: []runtime.RateLimitPolicy{p, p}} // the same descriptor twice: sent once
}

func TestGlobal(t *testing.T) {
	stub := &stubRLS{}
	addr := startRLS(t, stub)
	closed := func() string { // a port nothing listens on
		lis, _ := net.Listen("tcp", "127.0.0.1:0")
		defer lis.Close()
		return lis.Addr().String()
	}()
	l := New(Config{})
	t.Cleanup(func() { l.Close() })
	headers := []*corev3.HeaderValue{{Key: "x-ratelimit-limit", Value: "10"}}
	tests := []struct {
		name  string
		resp  *rlsv3.RateLimitResponse
		chain *runtime.FilterChain
		user  string
		want  Decision
	}{
		{name: "OK", chain: globalChain(addr, false), user: "alice",
			resp: &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, ResponseHeadersToAdd: headers},
			want: Decision{Headers: []Header{{"x-ratelimit-limit", "10"}}}},
		{name: "over the limit", chain: globalChain(addr, false), user: "alice",
			resp: &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT, ResponseHeadersToAdd: headers},
			want: Decision{Refuse: true, Flag: reqinfo.RateLimited, Headers: []Header{{"x-ratelimit-limit", "10"}}}},
		{name: "no descriptor: no call", chain: globalChain(closed, true), user: "", want: Decision{}},
		{name: "service down, fail open", chain: globalChain(closed, false), user: "alice", want: Decision{}},
		{name: "service down, failure_mode_deny", chain: globalChain(closed, true), user: "alice",
			want: Decision{Refuse: true, Flag: reqinfo.RateLimitServiceError}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub.mu.Lock()
			stub.resp, stub.last = tt.resp, nil
			stub.mu.Unlock()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.user != "" {
				r.Header.Set("X-User", tt.user)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got := l.Check(ctx, tt.chain, globalRoute(), Request{HTTP: r})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			stub.mu.Lock()
			defer stub.mu.Unlock()
			if tt.resp != nil {
				if stub.last == nil || len(stub.last.Descriptors) != 1 || stub.last.Domain != "trellis" {
					t.Fatalf("request %v: want one descriptor in domain trellis", stub.last)
				}
				e := stub.last.Descriptors[0].Entries
				if len(e) != 2 || e[0].Value != "ns/p/0" || e[1].Key != "header.x-user" || e[1].Value != tt.user {
					t.Errorf("descriptor %v", e)
				}
			}
		})
	}
}

func BenchmarkLocalCheck(b *testing.B) {
	l := New(Config{})
	route := localRoute()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User", "alice")
	route.LocalRateLimit.Descriptors[0].Bucket = runtime.TokenBucket{MaxTokens: 1 << 30, TokensPerFill: 1 << 30, FillInterval: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l.Check(ctx, nil, route, Request{HTTP: r})
	}
}

func BenchmarkGlobalCheck(b *testing.B) {
	addr := startRLS(b, &stubRLS{resp: &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}})
	l := New(Config{})
	b.Cleanup(func() { l.Close() })
	chain, route := globalChain(addr, false), globalRoute()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-User", "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := l.Check(ctx, chain, route, Request{HTTP: r}); d.Refuse {
			b.Fatal("refused")
		}
	}
}

package forward

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// slowBackend answers after d, or when the client goes away.
func slowBackend(t *testing.T, name string, d time.Duration) *backend {
	return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
			fmt.Fprintf(w, "name=%s", name)
		case <-r.Context().Done():
		}
	})
}

// flakyBackend fails every other request with 503.
func flakyBackend(t *testing.T, name string) *backend {
	var n atomic.Int64
	return newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n.Add(1)%2 == 1 {
			http.Error(w, "flaky", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "name=%s body=%s", name, body)
	})
}

func TestTimeout(t *testing.T) {
	slow := slowBackend(t, "slow", 2*time.Second)
	h := newHarness(t, []*routev3.Route{to("slow", func(r *routev3.Route) {
		r.GetRoute().Timeout = durationpb.New(300 * time.Millisecond)
	})}, static("slow", addrs(slow)))
	got := h.get("/")
	info := h.rec.last()
	if got.code != http.StatusGatewayTimeout || got.body != "upstream request timeout" || !info.Flags.Has(reqinfo.UpstreamRequestTimeout) {
		t.Errorf("got %d %q flags %s, want 504 upstream request timeout UT", got.code, got.body, info.Flags)
	}
	if info.Duration >= 2*time.Second {
		t.Errorf("answered after %v: the timeout did not cut the 2s backend short", info.Duration)
	}
}

func TestRetries(t *testing.T) {
	retry5xx := &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: u32(3),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	t.Run("5xx on a half-failing backend", func(t *testing.T) {
		flaky := flakyBackend(t, "flaky")
		h := newHarness(t, []*routev3.Route{to("flaky", withRetry(retry5xx))}, static("flaky", addrs(flaky)))
		for i := range 100 {
			// A body is replayed on the retry.
			if got := h.do("POST", "/", nil, fmt.Sprintf("req-%d", i)); got.code != 200 || got.body != fmt.Sprintf("name=flaky body=req-%d", i) {
				t.Fatalf("request %d: got %d %q, want 200 with its body", i, got.code, got.body)
			}
		}
		if n := h.stats.Cluster("flaky").Retries.Load(); n < 40 {
			t.Errorf("%d retries for 100 requests to a half-failing backend; want about 50", n)
		}
	})
	t.Run("without retries half fail", func(t *testing.T) {
		flaky := flakyBackend(t, "flaky")
		h := newHarness(t, []*routev3.Route{to("flaky")}, static("flaky", addrs(flaky)))
		failed := 0
		for range 20 {
			if h.get("/").code != 200 {
				failed++
			}
		}
		if failed != 10 {
			t.Errorf("%d of 20 failed, want 10", failed)
		}
	})
	t.Run("connect failure retried on another endpoint", func(t *testing.T) {
		ok := newBackend(t, "ok", nil)
		h := newHarness(t, []*routev3.Route{to("c", withRetry(&routev3.RetryPolicy{RetryOn: "connect-failure", NumRetries: u32(1)}))},
			static("c", []string{closedAddr(t), ok.addr}))
		for i := range 10 {
			if got := h.get("/"); got.code != 200 {
				t.Fatalf("request %d: got %d %q; the retry must avoid the dead endpoint", i, got.code, got.body)
			}
		}
	})
	t.Run("retry limit exceeded", func(t *testing.T) {
		bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) })
		h := newHarness(t, []*routev3.Route{to("bad", withRetry(retry5xx))}, static("bad", addrs(bad)))
		got := h.get("/")
		if info := h.rec.last(); got.code != 503 || got.body != "down" || !info.Flags.Has(reqinfo.UpstreamRetryLimitExceeded) || info.Attempts != 4 {
			t.Errorf("got %d %q flags %s attempts %d, want the upstream's 503 after 4 attempts, URX", got.code, got.body, info.Flags, info.Attempts)
		}
		if bad.count.Load() != 4 {
			t.Errorf("backend saw %d attempts, want 4", bad.count.Load())
		}
	})
	t.Run("retriable status codes and gateway errors only", func(t *testing.T) {
		var n atomic.Int64
		codes := []int{500, 429, 502, 200}
		b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(codes[(n.Add(1)-1)%int64(len(codes))])
		})
		h := newHarness(t, []*routev3.Route{to("b", withRetry(&routev3.RetryPolicy{RetryOn: "gateway-error,retriable-status-codes",
			RetriableStatusCodes: []uint32{429}, NumRetries: u32(5)}))}, static("b", addrs(b)))
		if got := h.get("/"); got.code != 500 || b.count.Load() != 1 {
			t.Errorf("500: got %d after %d attempts, want 500 after 1 (not a gateway error)", got.code, b.count.Load())
		}
		if got := h.get("/"); got.code != 200 || b.count.Load() != 4 {
			t.Errorf("429 then 502 then 200: got %d after %d attempts, want 200 after 4 in all", got.code, b.count.Load())
		}
	})
	t.Run("large body is not retried", func(t *testing.T) {
		flaky := flakyBackend(t, "flaky")
		h := newHarness(t, []*routev3.Route{to("flaky", withRetry(retry5xx))}, static("flaky", addrs(flaky)))
		big := strings.Repeat("x", maxReplayBody+1)
		if got := h.do("POST", "/", nil, big); got.code != 503 || flaky.count.Load() != 1 {
			t.Errorf("got %d after %d attempts, want the first attempt's 503", got.code, flaky.count.Load())
		}
	})
}

func TestPerTryTimeout(t *testing.T) {
	perTry := &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: u32(2), PerTryTimeout: durationpb.New(200 * time.Millisecond)}
	t.Run("a hung endpoint is retried on another", func(t *testing.T) {
		slow, fast := slowBackend(t, "slow", 5*time.Second), newBackend(t, "fast", nil)
		h := newHarness(t, []*routev3.Route{to("c", withRetry(perTry))}, static("c", addrs(slow, fast)))
		for i := range 6 {
			if got := h.get("/"); got.code != 200 || !strings.HasPrefix(got.body, "name=fast") {
				t.Fatalf("request %d: got %d %q, want fast's answer", i, got.code, got.body)
			}
		}
		if slow.count.Load() == 0 {
			t.Error("the slow endpoint was never tried: the test proves nothing")
		}
	})
	t.Run("every try times out", func(t *testing.T) {
		slow := slowBackend(t, "slow", 5*time.Second)
		h := newHarness(t, []*routev3.Route{to("slow", withRetry(perTry))}, static("slow", addrs(slow)))
		got := h.get("/")
		if info := h.rec.last(); got.code != 504 || !info.Flags.Has(reqinfo.UpstreamRequestTimeout) || info.Attempts != 3 {
			t.Errorf("got %d %q flags %s after %d attempts, want 504 UT after 3", got.code, got.body, info.Flags, info.Attempts)
		}
	})
}

func TestBackoff(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		http.Error(w, "down", 503)
	})
	// Backoff is random in [0, (2^k - 1) × base) capped at max: with a 1ms base and
	// max, every wait is below a millisecond plus scheduling; with 40ms base the
	// third retry may wait up to 280ms. The test checks the attempts happen and the
	// request ends; their spacing is random by design.
	h := newHarness(t, []*routev3.Route{to("bad", withRetry(&routev3.RetryPolicy{RetryOn: "5xx", NumRetries: u32(3),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(40 * time.Millisecond), MaxInterval: durationpb.New(100 * time.Millisecond)}}))},
		static("bad", addrs(bad)))
	if got := h.get("/"); got.code != 503 {
		t.Fatalf("got %d", got.code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 4 {
		t.Fatalf("%d attempts, want 4", len(at))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap > 2*time.Second {
			t.Errorf("gap %d is %v: beyond the 100ms max interval plus any slack", i, gap)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	retry := withRetry(&routev3.RetryPolicy{RetryOn: "5xx", NumRetries: u32(3),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}})
	tests := []struct {
		name         string
		thresholds   *clusterv3.CircuitBreakers_Thresholds
		wantAttempts int64
	}{
		{name: "max_retries 0 stops retries", thresholds: &clusterv3.CircuitBreakers_Thresholds{MaxRetries: u32(0)}, wantAttempts: 1},
		{name: "budget with no minimum stops retries of one request", thresholds: &clusterv3.CircuitBreakers_Thresholds{
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 20}, MinRetryConcurrency: u32(0)}},
			wantAttempts: 1},
		{name: "budget minimum lets one retry at a time", thresholds: &clusterv3.CircuitBreakers_Thresholds{
			RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{MinRetryConcurrency: u32(1)}},
			wantAttempts: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) })
			h := newHarness(t, []*routev3.Route{to("bad", retry)}, static("bad", addrs(bad), func(c *clusterv3.Cluster) {
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{tt.thresholds}}
			}))
			if got := h.get("/"); got.code != 503 || got.body != "down" {
				t.Fatalf("got %d %q, want the upstream's 503", got.code, got.body)
			}
			if n := bad.count.Load(); n != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", n, tt.wantAttempts)
			}
			if tt.wantAttempts == 1 && h.stats.Cluster("bad").RetryOverflow.Load() != 1 {
				t.Errorf("retry overflow not counted")
			}
		})
	}
}

func TestCircuitBreakers(t *testing.T) {
	tests := []struct {
		name       string
		thresholds *clusterv3.CircuitBreakers_Thresholds
		clients    int
		wantOK     int
	}{
		{name: "one connection, one pending", clients: 4, wantOK: 2,
			thresholds: &clusterv3.CircuitBreakers_Thresholds{MaxConnections: u32(1), MaxPendingRequests: u32(1)}},
		{name: "two requests", clients: 5, wantOK: 2, thresholds: &clusterv3.CircuitBreakers_Thresholds{MaxRequests: u32(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var entered atomic.Int64
			app := newBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
				entered.Add(1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
				fmt.Fprint(w, "ok")
			})
			h := newHarness(t, []*routev3.Route{to("app")}, static("app", addrs(app), func(c *clusterv3.Cluster) {
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{tt.thresholds}}
			}))
			results := make(chan result, tt.clients)
			var wg sync.WaitGroup
			for range tt.clients {
				wg.Go(func() { results <- h.get("/") })
			}
			// The overflowing clients are answered at once, while the others wait.
			overflow := 0
			for overflow < tt.clients-tt.wantOK {
				select {
				case got := <-results:
					if got.code != 503 || got.body != "upstream overflow" {
						t.Fatalf("early answer %d %q, want 503 upstream overflow", got.code, got.body)
					}
					overflow++
				case <-time.After(10 * time.Second):
					t.Fatalf("only %d overflowed", overflow)
				}
			}
			close(release)
			wg.Wait()
			close(results)
			for got := range results {
				if got.code != 200 {
					t.Errorf("admitted request got %d %q", got.code, got.body)
				}
			}
			if n := h.stats.Cluster("app").Flag(reqinfo.UpstreamOverflow); n != uint64(tt.clients-tt.wantOK) {
				t.Errorf("UO counted %d times, want %d", n, tt.clients-tt.wantOK)
			}
		})
	}
}

func TestOutlierDetection(t *testing.T) {
	detect := func(maxPercent uint32, panic float64) func(*clusterv3.Cluster) {
		return func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{
				Consecutive_5Xx:    u32(3),
				Interval:           durationpb.New(20 * time.Millisecond),
				BaseEjectionTime:   durationpb.New(300 * time.Millisecond),
				MaxEjectionPercent: u32(maxPercent),
			}
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: panic}}
		}
	}
	t.Run("ejection moves traffic and lifts", func(t *testing.T) {
		var failing atomic.Bool
		failing.Store(true)
		bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				http.Error(w, "broken", 500)
				return
			}
			fmt.Fprint(w, "name=bad")
		})
		good := newBackend(t, "good", nil)
		h := newHarness(t, []*routev3.Route{to("c")}, static("c", addrs(bad, good), detect(50, 50)))
		for range 10 {
			h.get("/")
		}
		if n := bad.count.Load(); n != 3 {
			t.Fatalf("the failing endpoint took %d requests before ejection, want 3", n)
		}
		for range 20 {
			if got := h.get("/"); got.code != 200 {
				t.Fatalf("got %d %q after ejection, want the healthy endpoint's 200", got.code, got.body)
			}
		}
		failing.Store(false)
		eventually(t, 10*time.Second, "ejection lifted", func() error {
			h.get("/")
			if bad.count.Load() == 3 {
				return fmt.Errorf("still ejected")
			}
			return nil
		})
	})
	t.Run("panic threshold uses all endpoints", func(t *testing.T) {
		a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) })
		b := newBackend(t, "b", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) })
		h := newHarness(t, []*routev3.Route{to("c")}, static("c", addrs(a, b), detect(100, 50)))
		for range 10 {
			h.get("/")
		}
		// Both are ejected: 0% healthy is below 50%, so both keep taking traffic.
		before := a.count.Load() + b.count.Load()
		for range 10 {
			if got := h.get("/"); got.body != "broken" {
				t.Fatalf("got %d %q, want the endpoints' own 500", got.code, got.body)
			}
		}
		if a.count.Load()+b.count.Load() != before+10 {
			t.Errorf("endpoints took %d of 10 requests in panic mode", a.count.Load()+b.count.Load()-before)
		}
	})
	t.Run("no panic threshold answers no healthy upstream", func(t *testing.T) {
		a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) })
		h := newHarness(t, []*routev3.Route{to("c")}, static("c", addrs(a), detect(100, 0)))
		for range 3 {
			h.get("/")
		}
		got := h.get("/")
		if info := h.rec.last(); got.code != 503 || got.body != "no healthy upstream" || !info.Flags.Has(reqinfo.NoHealthyUpstream) {
			t.Errorf("got %d %q flags %s, want 503 no healthy upstream UH", got.code, got.body, info.Flags)
		}
	})
}

func TestConnectionPoolOptions(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]int{}
	app := newBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
	})
	h := newHarness(t, []*routev3.Route{to("app")}, static("app", addrs(app), func(c *clusterv3.Cluster) {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{runtime.HTTPProtocolOptionsKey: xdstest.MustAny(&httpv3.HttpProtocolOptions{
			CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: u32(2), IdleTimeout: durationpb.New(time.Minute)},
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}},
		})}
	}))
	for range 6 {
		if got := h.get("/"); got.code != 200 {
			t.Fatalf("got %d", got.code)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for addr, n := range conns {
		if n > 2 {
			t.Errorf("connection %s carried %d requests, want at most 2", addr, n)
		}
	}
	if len(conns) != 3 {
		t.Errorf("%d connections for 6 requests at 2 per connection, want 3: %v", len(conns), conns)
	}
}

package forward

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

func TestMirror(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	shadow := newBackend(t, "shadow", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %s %s", r.Method, r.Host, r.RequestURI, body))
		mu.Unlock()
		http.Error(w, "the mirror's answer is discarded", 500)
	})
	app := newBackend(t, "app", nil)
	mirror := func(percent uint32) func(*routev3.Route) {
		return func(r *routev3.Route) {
			r.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow",
				RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: percent}}}}
		}
	}
	h := newHarness(t, []*routev3.Route{
		to("app", withPrefix("/all"), mirror(100)),
		to("app", withPrefix("/none"), mirror(0)),
	}, static("app", addrs(app)), static("shadow", addrs(shadow)))
	for i := range 5 {
		if got := h.do("POST", fmt.Sprintf("/all/%d", i), map[string]string{"Host": "app:8080"}, fmt.Sprintf("payload-%d", i)); got.code != 200 || !strings.HasPrefix(got.body, "name=app") {
			t.Fatalf("main response %d %q: the mirror must not affect it", got.code, got.body)
		}
		h.get("/none")
	}
	eventually(t, 10*time.Second, "mirror receives five copies", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 5 {
			return fmt.Errorf("mirror saw %d requests: %v", len(seen), seen)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		// Each copy carries its own request's body (not a recycled buffer's).
		var n int
		if _, err := fmt.Sscanf(s, "POST app-shadow:8080 /all/%d", &n); err != nil || !strings.HasSuffix(s, fmt.Sprintf(" payload-%d", n)) {
			t.Errorf("mirror saw %q, want POST app-shadow:8080 /all/N payload-N", s)
		}
	}
}

func TestFault(t *testing.T) {
	app := newBackend(t, "app", nil)
	fault := func(f *faultv3.HTTPFault) func(*routev3.Route) { return withFilter(runtime.FaultFilter, f) }
	pct := func(n uint32) *typev3.FractionalPercent { return &typev3.FractionalPercent{Numerator: n} }
	h := newHarness(t, []*routev3.Route{
		to("app", withPrefix("/delay"), fault(&faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(200 * time.Millisecond)}, Percentage: pct(100)}})),
		to("app", withPrefix("/abort"), fault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 418}, Percentage: pct(100)}})),
		to("app", withPrefix("/half"), fault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: pct(50)}})),
		to("app", withPrefix("/grpc"), fault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: pct(100)}})),
	}, static("app", addrs(app)))

	start := time.Now()
	if got := h.get("/delay"); got.code != 200 || time.Since(start) < 200*time.Millisecond || !h.rec.last().Flags.Has(reqinfo.DelayInjected) {
		t.Errorf("delay: %d after %v flags %s, want 200 after at least 200ms, DI", got.code, time.Since(start), h.rec.last().Flags)
	}
	if got := h.get("/abort"); got.code != 418 || !h.rec.last().Flags.Has(reqinfo.FaultInjected) || app.count.Load() != 1 {
		t.Errorf("abort: %d flags %s, upstream saw %d, want 418 FI without reaching the upstream", got.code, h.rec.last().Flags, app.count.Load()-1)
	}
	aborted := 0
	for range 200 {
		if h.get("/half").code == 503 {
			aborted++
		}
	}
	if aborted < 60 || aborted > 140 {
		t.Errorf("%d of 200 aborted at 50%%", aborted)
	}
	if got := h.get("/grpc"); got.code != 200 || got.header.Get("Grpc-Status") != "14" {
		t.Errorf("grpc abort: %d grpc-status %q, want 200 with grpc-status 14", got.code, got.header.Get("Grpc-Status"))
	}
}

func TestCORS(t *testing.T) {
	app := newBackend(t, "app", nil)
	h := newHarness(t, []*routev3.Route{to("app", withFilter(runtime.CORSFilter, &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.example"}},
			{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://.*\.b\.example`}}},
		},
		AllowMethods: "GET,POST", AllowHeaders: "x-token", ExposeHeaders: "x-trace", MaxAge: "600",
		AllowCredentials: wrapperspb.Bool(true),
	}))}, static("app", addrs(app)))
	preflight := func(origin string) result {
		return h.do("OPTIONS", "/", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"}, "")
	}
	got := preflight("https://x.b.example")
	want := map[string]string{"Access-Control-Allow-Origin": "https://x.b.example", "Access-Control-Allow-Methods": "GET,POST",
		"Access-Control-Allow-Headers": "x-token", "Access-Control-Max-Age": "600", "Access-Control-Allow-Credentials": "true"}
	for k, v := range want {
		if got.header.Get(k) != v {
			t.Errorf("preflight %s = %q, want %q", k, got.header.Get(k), v)
		}
	}
	if got.code != 200 || app.count.Load() != 0 {
		t.Errorf("preflight: %d, upstream saw %d; want 200 answered by the sidecar", got.code, app.count.Load())
	}
	if got := preflight("https://evil.example"); got.header.Get("Access-Control-Allow-Origin") != "" || app.count.Load() != 1 {
		t.Errorf("disallowed origin: allow-origin %q, upstream saw %d; want no CORS headers, passed to the upstream", got.header.Get("Access-Control-Allow-Origin"), app.count.Load())
	}
	got = h.do("GET", "/", map[string]string{"Origin": "https://a.example"}, "")
	if got.header.Get("Access-Control-Allow-Origin") != "https://a.example" || got.header.Get("Access-Control-Expose-Headers") != "x-trace" {
		t.Errorf("actual request headers %v: want allow-origin and expose-headers", got.header)
	}
}

func TestLoadBalancingPolicies(t *testing.T) {
	t.Run("least request prefers the idle endpoint", func(t *testing.T) {
		release := make(chan struct{})
		var stuck atomic.Int64
		busy := newBackend(t, "busy", func(w http.ResponseWriter, r *http.Request) {
			stuck.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		idle := newBackend(t, "idle", nil)
		h := newHarness(t, []*routev3.Route{to("c")}, static("c", addrs(busy, idle), func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		}))
		var wg sync.WaitGroup
		defer wg.Wait()
		defer close(release)
		const n = 60
		for range n {
			done := make(chan struct{})
			before := stuck.Load()
			wg.Go(func() { defer close(done); h.get("/") })
			// Wait until the request either finished (idle) or is held by busy.
			eventually(t, 10*time.Second, "request placed", func() error {
				select {
				case <-done:
					return nil
				default:
				}
				if stuck.Load() > before {
					return nil
				}
				return fmt.Errorf("pending")
			})
		}
		// Round robin would send half (30) to busy; power of two choices sends a
		// request there only when both draws pick it (a quarter).
		if got := stuck.Load(); got >= 26 {
			t.Errorf("busy endpoint took %d of %d requests, want clearly fewer than half", got, n)
		}
	})
	t.Run("ring hash sticks per header", func(t *testing.T) {
		a, b, c := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "c", nil)
		h := newHarness(t, []*routev3.Route{to("c", func(r *routev3.Route) {
			r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
		})}, static("c", addrs(a, b, c), func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RING_HASH }))
		owners := map[string]bool{}
		for u := range 12 {
			user := fmt.Sprintf("user-%d", u)
			first := h.do("GET", "/", map[string]string{"X-User": user}, "").body
			for range 5 {
				if got := h.do("GET", "/", map[string]string{"X-User": user}, "").body; got != first {
					t.Fatalf("%s went to %q then %q", user, first, got)
				}
			}
			owners[first] = true
		}
		if len(owners) < 2 {
			t.Errorf("12 users all on one endpoint: %v", owners)
		}
	})
	t.Run("ring hash cookie generated with ttl", func(t *testing.T) {
		a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
		h := newHarness(t, []*routev3.Route{to("c", func(r *routev3.Route) {
			r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
				Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "session", Ttl: durationpb.New(time.Hour), Path: "/"}}}}
		})}, static("c", addrs(a, b), func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RING_HASH }))
		first := h.get("/")
		cookie := first.header.Get("Set-Cookie")
		if !strings.HasPrefix(cookie, "session=") || !strings.Contains(cookie, "Max-Age=3600") || !strings.Contains(cookie, "Path=/") {
			t.Fatalf("Set-Cookie %q, want session=...; Path=/; Max-Age=3600", cookie)
		}
		value := strings.SplitN(cookie, ";", 2)[0]
		for range 10 {
			got := h.do("GET", "/", map[string]string{"Cookie": value}, "")
			if got.body != first.body || got.header.Get("Set-Cookie") != "" {
				t.Fatalf("with %s: got %q (Set-Cookie %q), want %q and no new cookie", value, got.body, got.header.Get("Set-Cookie"), first.body)
			}
		}
	})
	t.Run("random uses every endpoint", func(t *testing.T) {
		a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
		h := newHarness(t, []*routev3.Route{to("c")}, static("c", addrs(a, b), func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RANDOM }))
		for range 100 {
			h.get("/")
		}
		if a.count.Load() < 20 || b.count.Load() < 20 {
			t.Errorf("random split %d/%d of 100", a.count.Load(), b.count.Load())
		}
	})
}

func TestDNSCluster(t *testing.T) {
	app := newBackend(t, "app", nil)
	_, port, _ := net.SplitHostPort(app.addr)
	h := newHarness(t, []*routev3.Route{to("dns")}, static("dns", []string{"localhost:" + port}, func(c *clusterv3.Cluster) {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		c.DnsRefreshRate = durationpb.New(100 * time.Millisecond)
	}))
	got := h.get("/")
	if got.code != 200 || !strings.HasPrefix(got.body, "name=app") {
		t.Fatalf("got %d %q, want the app behind localhost", got.code, got.body)
	}
	eps := h.clusters.State("dns").Endpoints()
	if len(eps) == 0 || !strings.HasSuffix(eps[0].Addr, ":"+port) || strings.HasPrefix(eps[0].Addr, "localhost") {
		t.Errorf("endpoints %v: want resolved addresses", eps)
	}
}

// tcpNamed is a TCP server that writes its name and closes.
func tcpNamed(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, name)
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// tcpProxy serves a TCP proxy listener built from tp on a loopback port until the
// test ends, and returns its address.
func tcpProxy(t *testing.T, tp *tcpv3.TcpProxy, clusters ...*clusterv3.Cluster) (string, *stats.Stats) {
	t.Helper()
	l := xdstest.TCPListener("t", listenAddr, "unused")
	l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(tp)}
	res := runtime.Resources{Listeners: map[string]*listenerv3.Listener{"t": l}, Clusters: map[string]*clusterv3.Cluster{}}
	for _, c := range clusters {
		res.Clusters[c.Name] = c
	}
	table, err := runtime.Build(res)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, []*routev3.Route{}, clusters...)
	up := &Upstreams{logger: slog.New(slog.DiscardHandler), clusters: h.clusters, stats: h.stats, pools: map[upstreamKey]*upstream{}}
	up.Attach(table)
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &TCP{Stats: h.stats, Logger: slog.New(slog.DiscardHandler)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := front.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.Serve(t.Context(), c, table.ListenerAt(listenAddr)) })
		}
	})
	t.Cleanup(func() { front.Close(); wg.Wait() })
	return front.Addr().String(), h.stats
}

func TestTCPWeightsAndIdleTimeout(t *testing.T) {
	a, b := tcpNamed(t, "a"), tcpNamed(t, "b")
	echo := tcpEchoServer(t)
	addr, _ := tcpProxy(t, &tcpv3.TcpProxy{StatPrefix: "t",
		ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
			Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a", Weight: 80}, {Name: "b", Weight: 20}}}}},
		static("a", []string{a}), static("b", []string{b}))
	got := map[string]int{}
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		name, _ := io.ReadAll(c)
		c.Close()
		got[string(name)]++
	}
	// 80% of 200 is 160, standard deviation about 6.
	if got["a"] < 135 || got["a"] > 185 || got["a"]+got["b"] != 200 {
		t.Errorf("connections %v, want about 160/40", got)
	}

	idleAddr, _ := tcpProxy(t, &tcpv3.TcpProxy{StatPrefix: "t", IdleTimeout: durationpb.New(time.Second),
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "echo"}}, static("echo", []string{echo}))
	c, err := net.Dial("tcp", idleAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Activity keeps it open past the timeout (5 × 300ms)...
	buf := make([]byte, 4)
	for range 5 {
		io.WriteString(c, "ping")
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("echo: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // pacing the traffic, not waiting for a condition
	}
	// ...and silence closes it.
	start := time.Now()
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("read %d bytes, want the connection closed when idle", n)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("closed after %v idle, want about 1s", waited)
	}
}

// tcpEchoServer echoes every connection.
func tcpEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); io.Copy(c, c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

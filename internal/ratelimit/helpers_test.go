package ratelimit_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/ratelimit"
	"trellis.dev/trellis/internal/ratelimit/internal/redistest"
	"trellis.dev/trellis/internal/ratelimit/memstore"
	"trellis.dev/trellis/internal/ratelimit/policy"
	"trellis.dev/trellis/internal/ratelimit/redisstore"
)

// policiesYAML are the policies of the tests. Rule IDs: shop/checkout/0 (Local),
// shop/checkout/1 (10/min per x-user), shop/checkout/2 (shadow, 2/min),
// shop/checkout/3 (3/h per principal), shop/checkout/4 (5/s, x-tier: gold only),
// shop/checkout/5 (a limit that benchmarks never reach, per x-user).
const policiesYAML = `
apiVersion: trellis.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: checkout, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: checkout}]
  rules:
  - scope: Local
    limit: {requests: 100, per: 1s}
  - scope: Global
    limit: {requests: 10, per: 1m}
    clientSelectors:
    - headers: [{name: x-user, type: Distinct}]
  - scope: Global
    limit: {requests: 2, per: 1m}
    shadow: true
  - scope: Global
    limit: {requests: 3, per: 1h}
    clientSelectors: [{sourcePrincipals: ["cluster.local/ns/shop/sa/frontend"]}]
  - scope: Global
    limit: {requests: 5, per: 1s}
    clientSelectors: [{headers: [{name: x-tier, value: gold}]}]
  - scope: Global
    limit: {requests: 4000000000, per: 1h}
    clientSelectors: [{headers: [{name: x-user, type: Distinct}]}]
`

func testPolicies(t testing.TB) []*v1alpha1.RateLimitPolicy {
	t.Helper()
	set, err := config.Parse("policies.yaml", []byte(policiesYAML))
	if err != nil {
		t.Fatalf("parsing the policies: %v", err)
	}
	var out []*v1alpha1.RateLimitPolicy
	for _, p := range set.RateLimitPolicies {
		out = append(out, p.RateLimitPolicy)
	}
	return out
}

// fakeClock is a clock that tests move by hand; it starts 10s into a minute.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 2, 3, 4, 10, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// storeKind makes the stores of one kind that the servers of a test share.
type storeKind struct {
	name string
	// start returns a store; every call of the returned func gives a store on the same
	// counters (another replica's view), and redis is the Redis server, if any.
	start func(t testing.TB) (newStore func() ratelimit.Store, redis *redistest.Server)
}

var storeKinds = []storeKind{
	{name: "memory", start: func(t testing.TB) (func() ratelimit.Store, *redistest.Server) {
		s := memstore.New()
		return func() ratelimit.Store { return s }, nil
	}},
	{name: "redis", start: func(t testing.TB) (func() ratelimit.Store, *redistest.Server) {
		srv := redistest.Start(t)
		return func() ratelimit.Store {
			s, err := redisstore.New(redisstore.Config{Addr: srv.Addr})
			if err != nil {
				t.Fatalf("redisstore.New: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}, srv
	}},
}

// rls is a rate-limit server on a real gRPC listener and a client of it.
type rls struct {
	srv    *ratelimit.Server
	client rlsv3.RateLimitServiceClient
	addr   string
}

// startRLS serves a Server for cfg (with the test policies) on 127.0.0.1:0.
func startRLS(t testing.TB, cfg ratelimit.Config) *rls {
	t.Helper()
	srv, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatalf("ratelimit.New: %v", err)
	}
	if err := srv.SetPolicies(testPolicies(t)); err != nil {
		t.Fatalf("SetPolicies: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	var wg sync.WaitGroup
	wg.Go(func() { g.Serve(lis) })
	t.Cleanup(func() {
		g.Stop()
		wg.Wait()
	})
	return &rls{srv: srv, client: dial(t, lis.Addr().String()), addr: lis.Addr().String()}
}

// dial is a new client connection to the RLS at addr.
func dial(t testing.TB, addr string) rlsv3.RateLimitServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return rlsv3.NewRateLimitServiceClient(conn)
}

// request is the RLS request a proxy sends for rule id and an HTTP request with the
// given headers and principal, built with the policy package as a proxy builds it.
func request(t testing.TB, id string, header http.Header, principal string) *rlsv3.RateLimitRequest {
	t.Helper()
	table, err := policy.Compile(testPolicies(t))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	rule := table.Rule(id)
	if rule == nil {
		t.Fatalf("no rule %s", id)
	}
	entries, ok := rule.AppendDescriptor(nil, &policy.Request{Method: "GET", Path: "/", Header: header, SourcePrincipal: principal})
	if !ok {
		t.Fatalf("rule %s does not apply to the request", id)
	}
	return &rlsv3.RateLimitRequest{Domain: policy.DefaultDomain, Descriptors: []*commonrlv3.RateLimitDescriptor{descriptor(entries...)}}
}

func descriptor(entries ...policy.Entry) *commonrlv3.RateLimitDescriptor {
	d := &commonrlv3.RateLimitDescriptor{}
	for _, e := range entries {
		d.Entries = append(d.Entries, &commonrlv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value})
	}
	return d
}

func user(name string) http.Header { return http.Header{"X-User": {name}} }

// check calls ShouldRateLimit with a timeout.
func check(t testing.TB, c rlsv3.RateLimitServiceClient, req *rlsv3.RateLimitRequest) *rlsv3.RateLimitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ShouldRateLimit(ctx, req)
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp
}

// headers are a response's headers to add, as a map.
func headers(resp *rlsv3.RateLimitResponse) map[string]string {
	out := map[string]string{}
	for _, h := range resp.GetResponseHeadersToAdd() {
		out[h.GetKey()] = h.GetValue()
	}
	return out
}

// decisions reads trellis_ratelimit_decisions_total from reg, by "domain result".
func decisions(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "trellis_ratelimit_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if v := m.GetCounter().GetValue(); v != 0 {
				out[labels["domain"]+" "+labels["result"]] = v
			}
		}
	}
	return out
}

// logCounter is a slog handler that counts records by level.
type logCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[slog.Level]int{}
	}
	h.counts[r.Level]++
	return nil
}
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logCounter) WithGroup(string) slog.Handler      { return h }

func (h *logCounter) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[l]
}

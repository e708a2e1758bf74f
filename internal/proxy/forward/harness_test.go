package forward

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/cluster"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

// harness runs the HTTP path for one virtual host "app" with the given routes and
// clusters (built from real Envoy protos through runtime.Build), in front of real
// httptest backends.
type harness struct {
	t        testing.TB
	url      string
	handler  http.Handler // the listener's handler, which srv (url) serves
	stats    *stats.Stats
	clusters *cluster.Manager
	rec      *recorder
	client   *http.Client
}

// recorder keeps the Info of every request, for flag assertions.
type recorder struct {
	mu    sync.Mutex
	infos []reqinfo.Info
}

func (r *recorder) Record(info *reqinfo.Info) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos = append(r.infos, *info)
}

func (r *recorder) last() reqinfo.Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.infos) == 0 {
		return reqinfo.Info{}
	}
	return r.infos[len(r.infos)-1]
}

func newHarness(t testing.TB, routes []*routev3.Route, clusters ...*clusterv3.Cluster) *harness {
	t.Helper()
	rc := &routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{{Name: "app", Domains: []string{"app", "app:8080"}, Routes: routes}}}
	res := runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{"outbound": xdstest.HTTPListener("outbound", listenAddr, "outbound")},
		Routes:    map[string]*routev3.RouteConfiguration{"outbound": rc},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	for _, c := range clusters {
		res.Clusters[c.Name] = c
	}
	for typeURL, msgs := range map[string]map[string]proto.Message{
		runtime.RouteType: {"outbound": rc}, runtime.ClusterType: generic(res.Clusters),
	} {
		if err := runtime.Validate(typeURL, msgs); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	table, err := runtime.Build(res)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	h := &harness{t: t, stats: &stats.Stats{}, rec: &recorder{}}
	h.clusters = cluster.NewManager(cluster.Config{Logger: log})
	t.Cleanup(h.clusters.Close)
	fwd := NewHTTP(HTTPConfig{Tables: fixedTable{table}, Clusters: h.clusters, Stats: h.stats, Recorder: h.rec, Logger: log})
	t.Cleanup(fwd.Close)
	fwd.Upstreams().Attach(table)
	t.Cleanup(fwd.Upstreams().Close)
	h.handler = fwd.Handler(listenAddr)
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	h.client = &http.Client{
		Timeout:       20 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(h.client.CloseIdleConnections)
	return h
}

func generic[T proto.Message](m map[string]T) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// result is a response as the tests look at it.
type result struct {
	code   int
	body   string
	header http.Header
}

// do sends a request for host "app" and returns the response.
func (h *harness) do(method, target string, header map[string]string, body string) result {
	h.t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+target, rb)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = "app"
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, body: strings.TrimSpace(string(b)), header: resp.Header}
}

func (h *harness) get(target string) result { return h.do("GET", target, nil, "") }

// backend is an HTTP server that answers "name=<name> host=<host> uri=<uri>" unless
// handler (optional) says otherwise, and counts its requests.
type backend struct {
	name  string
	addr  string
	count atomic.Int64
}

func newBackend(t testing.TB, name string, handler http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.count.Add(1)
		if handler != nil {
			handler(w, r)
			return
		}
		fmt.Fprintf(w, "name=%s host=%s uri=%s", name, r.Host, r.RequestURI)
	}))
	t.Cleanup(srv.Close)
	b.addr = hostOf(srv.URL)
	return b
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// static is a STATIC cluster of backends, changed by muts.
func static(name string, addrs []string, muts ...func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := xdstest.StaticCluster(name, false, addrs...)
	for _, m := range muts {
		m(c)
	}
	return c
}

func addrs(bs ...*backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.addr)
	}
	return out
}

// to is a route matching every path and sending it to cluster, changed by muts.
func to(cluster string, muts ...func(*routev3.Route)) *routev3.Route {
	r := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
	}
	for _, m := range muts {
		m(r)
	}
	return r
}

func withPrefix(p string) func(*routev3.Route) {
	return func(r *routev3.Route) { r.Match.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p} }
}

func withHeader(name, value string) func(*routev3.Route) {
	return func(r *routev3.Route) {
		r.Match.Headers = append(r.Match.Headers, &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}}})
	}
}

func withRetry(p *routev3.RetryPolicy) func(*routev3.Route) {
	return func(r *routev3.Route) { r.GetRoute().RetryPolicy = p }
}

func withFilter(name string, m proto.Message) func(*routev3.Route) {
	return func(r *routev3.Route) {
		if r.TypedPerFilterConfig == nil {
			r.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		r.TypedPerFilterConfig[name] = xdstest.MustAny(m)
	}
}

func hv(key, value string, overwrite bool) *corev3.HeaderValueOption {
	o := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}}
	if overwrite {
		o.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	}
	return o
}

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }

// eventually polls f until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

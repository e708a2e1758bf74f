package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// TestTrafficManagementOverXDS configures a sidecar over a real ADS stream the way the
// control plane translates a VirtualService and a DestinationRule (subset clusters, a
// header match, a weighted split with retries, a fault) and checks the behaviour.
func TestTrafficManagementOverXDS(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			testTraffic(t, delta)
		})
	}
}

func testTraffic(t *testing.T, delta bool) {
	v1, v2 := appServer(t, "v1", false), appServer(t, "v2", false)
	var n atomic.Int64
	flaky := newFlaky(t, "v3", &n)
	outbound := freeAddr(t)
	srv := xdstest.Start(t, "127.0.0.1:0", nil)

	const (
		c1, c2, c3 = "outbound|9080|v1|reviews.default.svc.cluster.local", "outbound|9080|v2|reviews.default.svc.cluster.local", "outbound|9080|v3|reviews.default.svc.cluster.local"
	)
	jason := &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
			Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "jason"}}}}}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c2}}},
	}
	abort := &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/ratings"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c1}}},
		TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.fault": xdstest.MustAny(&faultv3.HTTPFault{
			Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500},
				Percentage: &typev3.FractionalPercent{Numerator: 100}}})},
	}
	split := &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: c1, Weight: wrapperspb.UInt32(80)}, {Name: c3, Weight: wrapperspb.UInt32(20)}}}},
			Timeout: durationpb.New(5 * time.Second),
			RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(3),
				RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}},
		}},
	}
	rc := xdstest.RouteConfig("outbound", &routev3.VirtualHost{Name: "reviews:9080", Domains: []string{"reviews", "reviews:9080"},
		Routes: []*routev3.Route{jason, abort, split}})
	leastRequest := func(c *clusterv3.Cluster) *clusterv3.Cluster {
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(100)}
		return c
	}
	res := []proto.Message{
		xdstest.TrafficHTTPListener("outbound", outbound, "outbound"), rc,
		leastRequest(xdstest.EDSCluster(c1, false)), xdstest.Assignment(c1, hostOf(v1.URL)),
		xdstest.EDSCluster(c2, false), xdstest.Assignment(c2, hostOf(v2.URL)),
		xdstest.EDSCluster(c3, false), xdstest.Assignment(c3, flaky),
	}
	node := "productpage.default"
	srv.Set(t, node, "1", res...)
	p := startProxy(t, node, srv.Addr, delta)
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + outbound + "/"
	eventually(t, 10*time.Second, "sidecar ready", func() error { return expect(client, url, "reviews:9080", 200, "app=") })

	// The header match sends every one of jason's requests to v2.
	for range 20 {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "reviews"
		req.Header.Set("End-User", "jason")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "app=v2") {
			t.Fatalf("jason got %q, want v2", body)
		}
	}
	// The split lands near 80/20, and retries hide v3's failing half.
	counts := map[string]int{}
	for range 300 {
		code, body, err := get(client, url, "reviews")
		if err != nil || code != 200 {
			t.Fatalf("split request: %d %q %v; retries must hide v3's failures", code, body, err)
		}
		counts[strings.Fields(body)[0]]++
	}
	if c := counts["app=v1"]; c < 210 || c > 270 {
		t.Errorf("split %v, want about 240/60", counts)
	}
	// The fault aborts with its status.
	if err := expect(client, "http://"+outbound+"/ratings", "reviews", 500, "fault filter abort"); err != nil {
		t.Error(err)
	}
	var stats strings.Builder
	p.stats.WriteText(&stats)
	for _, want := range []string{"listener.outbound.rq_flag_FI 1", "cluster." + c3 + ".upstream_rq_retry "} {
		if !strings.Contains(stats.String(), want) {
			t.Errorf("stats lack %q:\n%s", want, stats.String())
		}
	}

	// A route with a bad regex is NACKed naming the field; the sidecar keeps serving.
	bad := proto.Clone(rc).(*routev3.RouteConfiguration)
	bad.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/(unclosed"}}
	res[1] = bad
	srv.Set(t, node, "2", res...)
	const nack = `route configuration "outbound": virtual_hosts[0].routes[0].match.safe_regex.regex: "/(unclosed" is not a valid RE2 regular expression`
	eventually(t, 10*time.Second, "NACK of the bad regex", func() error {
		for _, r := range srv.Requests() {
			if strings.Contains(r.ErrorDetail, nack) {
				return nil
			}
		}
		return fmt.Errorf("no NACK containing %q", nack)
	})
	if err := expect(client, url, "reviews", 200, "app="); err != nil {
		t.Errorf("after the NACK: %v", err)
	}
}

// newFlaky is an app that fails every other request with 503.
func newFlaky(t *testing.T, name string, n *atomic.Int64) string {
	s := appServerFunc(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 {
			http.Error(w, "flaky", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "app=%s", name)
	})
	return hostOf(s.URL)
}

// appServerFunc is an HTTP app running handler until the test ends.
func appServerFunc(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(handler)
	t.Cleanup(s.Close)
	return s
}

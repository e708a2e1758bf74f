package runtime

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// routeWith is a route configuration with one route, changed by mut.
func routeWith(mut func(r *routev3.Route)) *routev3.RouteConfiguration {
	rc := xdstest.RouteConfig("outbound", xdstest.VirtualHost("echo:80", []string{"echo"}, "c"))
	mut(rc.VirtualHosts[0].Routes[0])
	return rc
}

func action(r *routev3.Route) *routev3.RouteAction { return r.GetRoute() }

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func percent(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}
}

func perFilter(name string, m proto.Message) func(r *routev3.Route) {
	return func(r *routev3.Route) { r.TypedPerFilterConfig = map[string]*anypb.Any{name: xdstest.MustAny(m)} }
}

func TestValidateTraffic(t *testing.T) {
	hcmWithFilters := func(names ...string) proto.Message {
		h := xdstest.HCM("outbound", "outbound", nil)
		h.HttpFilters = nil
		for _, n := range names {
			var cfg proto.Message = &routerv3.Router{}
			switch n {
			case FaultFilter:
				cfg = &faultv3.HTTPFault{}
			case CORSFilter:
				cfg = &corsv3.Cors{}
			}
			h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{Name: n, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.MustAny(cfg)}})
		}
		l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
		l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(h)}
		return l
	}
	cluster := func(mut func(c *clusterv3.Cluster)) proto.Message {
		c := xdstest.EDSCluster("c", false)
		mut(c)
		return c
	}
	tests := []struct {
		name    string
		typeURL string
		res     proto.Message
		want    string // substring of the error; "" for valid
	}{
		{name: "fault, cors, router", typeURL: ListenerType, res: hcmWithFilters(FaultFilter, CORSFilter, RouterFilter)},
		{name: "cors before fault", typeURL: ListenerType, res: hcmWithFilters(CORSFilter, FaultFilter, RouterFilter),
			want: `http_filters[1].name: filter "envoy.filters.http.fault" is not supported here`},
		{name: "router not last", typeURL: ListenerType, res: hcmWithFilters(FaultFilter),
			want: `http_filters: must end with the router`},
		{name: "every match kind", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Match = &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/v[0-9]+/.*"}},
				CaseSensitive: wrapperspb.Bool(false),
				Headers: []*routev3.HeaderMatcher{
					{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("jason")}},
					{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("GET")}},
					{Name: "x-debug", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true},
				},
				QueryParameters: []*routev3.QueryParameterMatcher{
					{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: regex("[0-9]+")}},
				},
			}
		})},
		{name: "bad path regex", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/(a"}}
		}), want: `route configuration "outbound": virtual_hosts[0].routes[0].match.safe_regex.regex: "/(a" is not a valid RE2 regular expression`},
		{name: "bad header regex", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: regex("(?<=a)b")}}}
		}), want: `virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex.regex: "(?<=a)b" is not a valid RE2`},
		{name: "unknown pseudo-header", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: ":protocol", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}
		}), want: `match.headers[0].name: pseudo-header ":protocol" is not supported`},
		{name: "full route action", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Action = &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: "a", Weight: wrapperspb.UInt32(80), RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-v", Value: "a"}}}},
					{Name: "b", Weight: wrapperspb.UInt32(20), ResponseHeadersToRemove: []string{"x-internal"}},
				}}},
				Timeout: durationpb.New(time.Second),
				RetryPolicy: &routev3.RetryPolicy{
					RetryOn: "5xx,gateway-error,connect-failure,retriable-status-codes,unavailable", NumRetries: wrapperspb.UInt32(3),
					PerTryTimeout: durationpb.New(100 * time.Millisecond), RetriableStatusCodes: []uint32{429},
					RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond)},
				},
				RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m",
					RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: percent(50)}}},
				RegexRewrite:         &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/v1/(.*)$"}, Substitution: `/\1`},
				HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "other"},
				HashPolicy:           []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "s", Ttl: durationpb.New(time.Hour)}}}},
			}}
		})},
		{name: "unknown retry condition", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			action(r).RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,envoy-ratelimited"}
		}), want: `routes[0].route.retry_policy.retry_on: condition "envoy-ratelimited" is not supported`},
		{name: "retry host predicate", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			action(r).RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", HostSelectionRetryMaxAttempts: 3}
		}), want: `routes[0].route.retry_policy.host_selection_retry_max_attempts: is not supported`},
		{name: "zero weights", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			action(r).ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(0)}}}}
		}), want: `weighted_clusters: the weights add up to 0`},
		{name: "append action add if absent", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "1"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT}}
		}), want: `request_headers_to_add[0].append_action: ADD_IF_ABSENT is not supported`},
		{name: "host header", typeURL: RouteType, res: routeWith(func(r *routev3.Route) { r.RequestHeadersToRemove = []string{"host"} }),
			want: `request_headers_to_remove[0]: the Host header cannot be changed`},
		{name: "redirect", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"},
				HostRedirect:           "example.com", PortRedirect: 8443,
				PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"},
				ResponseCode:         routev3.RedirectAction_PERMANENT_REDIRECT,
			}}
		})},
		{name: "direct response", typeURL: RouteType, res: routeWith(func(r *routev3.Route) {
			r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}
		})},
		{name: "fault", typeURL: RouteType, res: routeWith(perFilter(FaultFilter, &faultv3.HTTPFault{
			Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Second)}, Percentage: percent(10)},
			Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: percent(10)},
		}))},
		{name: "fault with max active faults", typeURL: RouteType, res: routeWith(perFilter(FaultFilter, &faultv3.HTTPFault{
			MaxActiveFaults: wrapperspb.UInt32(3),
		})), want: `typed_per_filter_config["envoy.filters.http.fault"].max_active_faults: is not supported`},
		{name: "cors", typeURL: RouteType, res: routeWith(perFilter(CORSFilter, &corsv3.CorsPolicy{
			AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("https://a.example")},
			AllowMethods:           "GET,POST", AllowHeaders: "x-a", ExposeHeaders: "x-b", MaxAge: "60",
			AllowCredentials: wrapperspb.Bool(true),
		}))},
		{name: "cors bad origin regex", typeURL: RouteType, res: routeWith(perFilter(CORSFilter, &corsv3.CorsPolicy{
			AllowOriginStringMatch: []*matcherv3.StringMatcher{regex("https://(a")},
		})), want: `typed_per_filter_config["envoy.filters.http.cors"].allow_origin_string_match[0].safe_regex.regex: "https://(a" is not a valid RE2`},
		{name: "unknown per-route filter", typeURL: RouteType, res: routeWith(perFilter("envoy.filters.http.rbac", &corsv3.CorsPolicy{})),
			want: `typed_per_filter_config["envoy.filters.http.rbac"]: filter "envoy.filters.http.rbac" is not supported`},
		{name: "cluster traffic policy", typeURL: ClusterType, res: cluster(func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(256)}}
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
				MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1), MaxRequests: wrapperspb.UInt32(10), MaxRetries: wrapperspb.UInt32(2),
				RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: 25}, MinRetryConcurrency: wrapperspb.UInt32(5)},
			}}}
			c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3), Interval: durationpb.New(time.Second),
				BaseEjectionTime: durationpb.New(time.Second), MaxEjectionPercent: wrapperspb.UInt32(50)}
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
		})},
		{name: "ring hash config on round robin", typeURL: ClusterType, res: cluster(func(c *clusterv3.Cluster) {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(256)}}
		}), want: `cluster "c": ring_hash_lb_config: is only used with lb_policy RING_HASH`},
		{name: "outlier split errors", typeURL: ClusterType, res: cluster(func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true}
		}), want: `cluster "c": outlier_detection.split_external_local_origin_errors: is not supported`},
		{name: "strict dns", typeURL: ClusterType, res: func() proto.Message {
			c := xdstest.StaticCluster("c", false, "localhost:80")
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			c.DnsRefreshRate = durationpb.New(time.Second)
			return c
		}()},
		{name: "tcp weights", typeURL: ListenerType, res: func() proto.Message {
			l := xdstest.TCPListener("t", "127.0.0.1:19000", "a")
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(&tcpv3.TcpProxy{
				StatPrefix: "t", IdleTimeout: durationpb.New(time.Minute),
				ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{
					{Name: "a", Weight: 80}, {Name: "b", Weight: 20}}}},
			})}
			return l
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.typeURL, one(tt.res))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate: no error, want one containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate error:\n got %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestRouteMatch(t *testing.T) {
	hdr := func(name string, sm *matcherv3.StringMatcher, invert bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}, InvertMatch: invert}
	}
	present := func(name string, p, invert bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: p}, InvertMatch: invert}
	}
	query := func(name string, sm *matcherv3.StringMatcher) *routev3.QueryParameterMatcher {
		if sm == nil {
			return &routev3.QueryParameterMatcher{Name: name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}
		}
		return &routev3.QueryParameterMatcher{Name: name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}}
	}
	sm := func(mut func(*matcherv3.StringMatcher)) *matcherv3.StringMatcher {
		m := &matcherv3.StringMatcher{}
		mut(m)
		return m
	}
	tests := []struct {
		name   string
		match  *routev3.RouteMatch
		method string
		target string
		header map[string]string
		want   bool
	}{
		{name: "prefix", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}}, target: "/api/v1", want: true},
		{name: "prefix is case sensitive", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}}, target: "/API/v1"},
		{name: "prefix ignoring case", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"}, CaseSensitive: wrapperspb.Bool(false)}, target: "/API/v1", want: true},
		{name: "path exact", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/login"}}, target: "/login?next=/", want: true},
		{name: "path exact longer", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/login"}}, target: "/login/x"},
		{name: "regex whole path", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/v[0-9]+"}}}, target: "/v12", want: true},
		{name: "regex must match all", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/v[0-9]+"}}}, target: "/v12/x"},
		{name: "header exact", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr("end-user", exact("jason"), false)}},
			target: "/", header: map[string]string{"End-User": "jason"}, want: true},
		{name: "header exact other", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr("end-user", exact("jason"), false)}},
			target: "/", header: map[string]string{"End-User": "mary"}},
		{name: "header absent", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr("end-user", exact("jason"), false)}},
			target: "/"},
		{name: "header absent inverted", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr("end-user", exact("jason"), true)}},
			target: "/", want: true},
		{name: "header prefix ignore case", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
			hdr("x", sm(func(m *matcherv3.StringMatcher) {
				m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: "abc"}
				m.IgnoreCase = true
			}), false)}},
			target: "/", header: map[string]string{"X": "ABCdef"}, want: true},
		{name: "header suffix", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
			hdr("x", sm(func(m *matcherv3.StringMatcher) { m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: "def"} }), false)}},
			target: "/", header: map[string]string{"X": "abcdef"}, want: true},
		{name: "header contains", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{
			hdr("x", sm(func(m *matcherv3.StringMatcher) {
				m.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: "Cd"}
				m.IgnoreCase = true
			}), false)}},
			target: "/", header: map[string]string{"X": "abcdef"}, want: true},
		{name: "header regex", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr("x", regex(`\d{3}`), false)}},
			target: "/", header: map[string]string{"X": "123"}, want: true},
		{name: "header regex inverted", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr("x", regex(`\d{3}`), true)}},
			target: "/", header: map[string]string{"X": "1234"}, want: true},
		{name: "present", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{present("x", true, false)}},
			target: "/", header: map[string]string{"X": ""}, want: true},
		{name: "not present", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{present("x", true, true)}},
			target: "/", want: true},
		{name: "method", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr(":method", exact("POST"), false)}},
			method: "POST", target: "/", want: true},
		{name: "other method", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr(":method", exact("POST"), false)}},
			target: "/"},
		{name: "authority", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{hdr(":authority", exact("echo:80"), false)}},
			target: "/", header: map[string]string{"Host": "echo:80"}, want: true},
		{name: "query exact", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{query("user", exact("a b"))}},
			target: "/?x=1&user=a+b", want: true},
		{name: "query encoded", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{query("user", exact("a&b"))}},
			target: "/?user=a%26b", want: true},
		{name: "query present", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{query("debug", nil)}},
			target: "/?debug", want: true},
		{name: "query absent", match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{query("debug", nil)}},
			target: "/?debugger=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseRouteMatch(tt.match)
			if err != nil {
				t.Fatal(err)
			}
			method := tt.method
			if method == "" {
				method = "GET"
			}
			r := httptest.NewRequest(method, tt.target, nil)
			for k, v := range tt.header {
				if k == "Host" {
					r.Host = v
					continue
				}
				r.Header.Set(k, v)
			}
			if got := m.Matches(r); got != tt.want {
				t.Errorf("Matches(%s %s %v) = %v, want %v", method, tt.target, tt.header, got, tt.want)
			}
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	p, err := parseRetryPolicy(&routev3.RetryPolicy{RetryOn: "gateway-error,retriable-status-codes,retriable-4xx,unavailable", RetriableStatusCodes: []uint32{429}})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, code := range []int{200, 409, 429, 500, 502, 503, 504} {
		if p.RetriableStatus(code, -1) {
			got = append(got, code)
		}
	}
	if diff := cmp.Diff([]int{409, 429, 502, 503, 504}, got); diff != "" {
		t.Errorf("retriable statuses (-want +got):\n%s", diff)
	}
	if !p.RetriableStatus(200, 14) || p.RetriableStatus(200, 13) {
		t.Errorf("grpc-status: unavailable must be retriable, internal not")
	}
	if p.NumRetries != 1 || p.BaseInterval != 25*time.Millisecond || p.MaxInterval != 250*time.Millisecond {
		t.Errorf("defaults: %d retries, %v base, %v max; want 1, 25ms, 250ms", p.NumRetries, p.BaseInterval, p.MaxInterval)
	}
	for k, want := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 75 * time.Millisecond, 3: 175 * time.Millisecond, 10: 250 * time.Millisecond} {
		if got := p.Backoff(k, 0.9999999); got > want || got < want*9/10 {
			t.Errorf("Backoff(%d, ~1) = %v, want just below %v", k, got, want)
		}
	}
	connectOnly, _ := parseRetryPolicy(&routev3.RetryPolicy{RetryOn: "connect-failure"})
	if !connectOnly.RetriableFailure(ConnectFailure) || connectOnly.RetriableFailure(Reset) || connectOnly.RetriableStatus(503, -1) {
		t.Errorf("connect-failure retries connect failures only")
	}
}

// BenchmarkRouteMatch measures choosing a route: ten routes with header, query and
// regex matches, the last one matching.
func BenchmarkRouteMatch(b *testing.B) {
	var routes []*routev3.Route
	for i := range 9 {
		routes = append(routes, &routev3.Route{
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api"},
				Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
					StringMatch: exact("user-" + string(rune('a'+i)))}}},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
					StringMatch: regex("[0-9]+")}}},
			},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
		})
	}
	routes = append(routes, &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/api/v[0-9]+/.*"}}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
	})
	vh := &VirtualHost{}
	for _, r := range routes {
		route, err := parseRoute(r)
		if err != nil {
			b.Fatal(err)
		}
		vh.Routes = append(vh.Routes, route)
	}
	req := httptest.NewRequest("GET", "/api/v2/items?page=3&v=7", nil)
	req.Header.Set("End-User", "someone")
	req.Header.Set("Accept", "application/json")
	b.ReportAllocs()
	for b.Loop() {
		if vh.Route(req) != vh.Routes[9] {
			b.Fatal("wrong route")
		}
	}
}

package forward

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

func TestRouteMatchKinds(t *testing.T) {
	v1, v2, v3 := newBackend(t, "v1", nil), newBackend(t, "v2", nil), newBackend(t, "v3", nil)
	h := newHarness(t, []*routev3.Route{
		to("v2", withHeader("end-user", "jason")),
		to("v3", func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "POST"}}}}}
		}),
		to("v3", func(r *routev3.Route) {
			r.Match.QueryParameters = []*routev3.QueryParameterMatcher{{Name: "canary", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}
		}),
		to("v2", func(r *routev3.Route) {
			r.Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/items/[0-9]+"}}
		}),
		to("v3", func(r *routev3.Route) {
			r.Match.PathSpecifier = &routev3.RouteMatch_Path{Path: "/exact"}
			r.Match.CaseSensitive = wrapperspb.Bool(false)
		}),
		to("v1", withPrefix("/")),
	}, static("v1", addrs(v1)), static("v2", addrs(v2)), static("v3", addrs(v3)))

	tests := []struct {
		name   string
		method string
		target string
		header map[string]string
		want   string
	}{
		{name: "header match", target: "/", header: map[string]string{"End-User": "jason"}, want: "v2"},
		{name: "header other value", target: "/", header: map[string]string{"End-User": "mary"}, want: "v1"},
		{name: "method", method: "POST", target: "/", want: "v3"},
		{name: "query parameter", target: "/x?canary", want: "v3"},
		{name: "regex", target: "/items/42", want: "v2"},
		{name: "regex not whole path", target: "/items/42/x", want: "v1"},
		{name: "exact ignoring case", target: "/EXACT", want: "v3"},
		{name: "fallthrough", target: "/anything", want: "v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			got := h.do(method, tt.target, tt.header, "")
			if got.code != 200 || !strings.HasPrefix(got.body, "name="+tt.want+" ") {
				t.Errorf("%s %s %v: got %d %q, want backend %s", method, tt.target, tt.header, got.code, got.body, tt.want)
			}
		})
	}
	// No route: 404 with flag NR.
	h2 := newHarness(t, []*routev3.Route{to("v1", withPrefix("/only"))}, static("v1", addrs(v1)))
	if got := h2.get("/other"); got.code != 404 || !h2.rec.last().Flags.Has(reqinfo.NoRoute) {
		t.Errorf("unrouted path: %d flags %s, want 404 NR", got.code, h2.rec.last().Flags)
	}
}

func TestWeightedSplit(t *testing.T) {
	v1, v2 := newBackend(t, "v1", nil), newBackend(t, "v2", nil)
	h := newHarness(t, []*routev3.Route{to("", func(r *routev3.Route) {
		r.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
			Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "v1", Weight: u32(80)}, {Name: "v2", Weight: u32(20)}}}}
	})}, static("v1", addrs(v1)), static("v2", addrs(v2)))
	const n = 500
	for range n {
		if got := h.get("/"); got.code != 200 {
			t.Fatalf("got %d %q", got.code, got.body)
		}
	}
	// 80% of 500 is 400, standard deviation about 9: allow five of them.
	if c := v1.count.Load(); c < 355 || c > 445 || c+v2.count.Load() != n {
		t.Errorf("v1 got %d and v2 %d of %d requests, want about 400/100", c, v2.count.Load(), n)
	}
}

func TestRewrites(t *testing.T) {
	app := newBackend(t, "app", nil)
	h := newHarness(t, []*routev3.Route{
		to("app", withPrefix("/api/"), func(r *routev3.Route) { r.GetRoute().PrefixRewrite = "/v2/" }),
		to("app", withPrefix("/old"), func(r *routev3.Route) {
			r.GetRoute().RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern: &matcherv3.RegexMatcher{Regex: "^/old/([a-z]+)/(.*)$"}, Substitution: `/new/\2/\1`}
		}),
		to("app", withPrefix("/host"), func(r *routev3.Route) {
			r.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "other.example"}
		}),
	}, static("app", addrs(app)))
	tests := []struct {
		target, want string
	}{
		{"/api/users?id=7", "name=app host=app uri=/v2/users?id=7"},
		{"/old/users/42", "name=app host=app uri=/new/42/users"},
		{"/host/x", "name=app host=other.example uri=/host/x"},
	}
	for _, tt := range tests {
		if got := h.get(tt.target); got.code != 200 || got.body != tt.want {
			t.Errorf("GET %s: got %d %q, want %q", tt.target, got.code, got.body, tt.want)
		}
	}
}

func TestRedirectAndDirectResponse(t *testing.T) {
	h := newHarness(t, []*routev3.Route{
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/moved"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "new.example",
				PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/landing"}}}},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/v1/"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}, PortRedirect: 8443,
				PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/v2/"},
				ResponseCode:         routev3.RedirectAction_PERMANENT_REDIRECT}}},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/teapot"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "short and stout"}}}}},
	})
	tests := []struct {
		target       string
		wantCode     int
		wantLocation string
		wantBody     string
	}{
		{target: "/moved/x?a=1", wantCode: 301, wantLocation: "http://new.example/landing?a=1"},
		{target: "/v1/items?page=2", wantCode: 308, wantLocation: "https://app:8443/v2/items?page=2"},
		{target: "/teapot", wantCode: 418, wantBody: "short and stout"},
	}
	for _, tt := range tests {
		got := h.get(tt.target)
		if got.code != tt.wantCode || got.header.Get("Location") != tt.wantLocation || got.body != tt.wantBody {
			t.Errorf("GET %s: got %d Location %q body %q, want %d %q %q", tt.target, got.code, got.header.Get("Location"), got.body,
				tt.wantCode, tt.wantLocation, tt.wantBody)
		}
	}
}

func TestHeaderManipulation(t *testing.T) {
	app := newBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Internal", "secret")
		w.Header().Set("X-App", "1")
		fmt.Fprintf(w, "route=%q cluster=%q keep=%q drop=%q", r.Header.Values("X-Route"), r.Header.Get("X-Cluster"),
			r.Header.Get("X-Keep"), r.Header.Get("X-Drop"))
	})
	h := newHarness(t, []*routev3.Route{to("", func(r *routev3.Route) {
		r.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
			Clusters: []*routev3.WeightedCluster_ClusterWeight{{
				Name: "app", Weight: u32(1),
				RequestHeadersToAdd:     []*corev3.HeaderValueOption{hv("x-cluster", "c1", true)},
				ResponseHeadersToAdd:    []*corev3.HeaderValueOption{hv("x-served-by", "app", true)},
				ResponseHeadersToRemove: []string{"x-internal"},
			}}}}
		r.RequestHeadersToAdd = []*corev3.HeaderValueOption{hv("x-route", "added", false), hv("x-keep", "set", true)}
		r.RequestHeadersToRemove = []string{"x-drop"}
		r.ResponseHeadersToAdd = []*corev3.HeaderValueOption{hv("x-app", "2", false)}
	})}, static("app", addrs(app)))
	got := h.do("GET", "/", map[string]string{"X-Route": "client", "X-Keep": "client", "X-Drop": "client"}, "")
	want := `route=["client" "added"] cluster="c1" keep="set" drop=""`
	if got.code != 200 || got.body != want {
		t.Errorf("upstream saw %q, want %q", got.body, want)
	}
	if got.header.Get("X-Served-By") != "app" || got.header.Get("X-Internal") != "" || strings.Join(got.header.Values("X-App"), ",") != "1,2" {
		t.Errorf("response headers %v: want X-Served-By app, no X-Internal, X-App 1,2", got.header)
	}
}

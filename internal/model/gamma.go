package model

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/names"
)

// Gateway API routes in mesh mode (GAMMA): an HTTPRoute or GRPCRoute whose parentRef
// is a Service applies to the requests addressed to that Service (one port of it if
// the parentRef names a port or a sectionName). A route in the Service's namespace
// is a producer route and applies to every client; a route in another namespace is
// a consumer route and applies only to clients in the route's namespace, ahead of
// the producer routes. The rules of all routes attached to one service port are
// ordered by the Gateway API's precedence: exact paths, then regular expressions,
// then the longest prefixes; then method matches, the most header matches and the
// most query matches; ties keep namespace/name order. Unmatched requests get 404.

// gammaRoute is one match of a rule, with what ranks it.
type gammaRoute struct {
	route *Route
	rank  []int // compared in order, larger first
}

// addGatewayRoutes attaches HTTPRoutes and GRPCRoutes to their Service parents.
func (b *builder) addGatewayRoutes(httpRoutes []config.HTTPRoute, grpcRoutes []config.GRPCRoute) {
	byPort := map[*Port][]gammaRoute{}
	var order []*Port
	add := func(p *Port, rs []gammaRoute) {
		if _, seen := byPort[p]; !seen {
			order = append(order, p)
		}
		byPort[p] = append(byPort[p], rs...)
	}
	for _, hr := range httpRoutes {
		obj := objectRef("HTTPRoute", &hr.ObjectMeta, hr.Pos)
		for _, pt := range b.gammaParents(obj, hr.Spec.ParentRefs) {
			t := &gammaTranslator{routeTranslator: routeTranslator{b: b, obj: obj, ns: obj.Namespace, svc: pt.svc, port: pt.port}, consumer: pt.consumer}
			add(pt.port, t.httpRules(hr.Spec.Rules))
		}
	}
	for _, gr := range grpcRoutes {
		obj := objectRef("GRPCRoute", &gr.ObjectMeta, gr.Pos)
		for _, pt := range b.gammaParents(obj, gr.Spec.ParentRefs) {
			t := &gammaTranslator{routeTranslator: routeTranslator{b: b, obj: obj, ns: obj.Namespace, svc: pt.svc, port: pt.port}, consumer: pt.consumer}
			add(pt.port, t.grpcRules(gr.Spec.Rules))
		}
	}
	for _, p := range order {
		rs := byPort[p]
		slices.SortStableFunc(rs, func(a, b gammaRoute) int {
			// Consumer routes first: RoutesFor keeps only them when one applies.
			if a.route.Consumer != b.route.Consumer {
				return cmp.Compare(boolInt(b.route.Consumer), boolInt(a.route.Consumer))
			}
			return -slices.Compare(a.rank, b.rank)
		})
		for _, r := range rs {
			p.Routes = append(p.Routes, r.route)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// gammaParent is one service port a route attaches to.
type gammaParent struct {
	svc      *Service
	port     *Port
	consumer bool
}

// gammaParents resolves a route's Service parents to their HTTP-family ports.
// Parents that are not Services are reported by the unsupported-field check.
func (b *builder) gammaParents(obj config.ObjectRef, refs []gatewayv1.ParentReference) []gammaParent {
	var out []gammaParent
	for i, ref := range refs {
		field := "spec.parentRefs[" + strconv.Itoa(i) + "]"
		if !isCoreService(ref.Group, ref.Kind) {
			continue
		}
		ns := obj.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		svc := b.mesh.Service(names.ServiceFQDN(string(ref.Name), ns))
		if svc == nil || svc.Origin == OriginServiceEntry {
			b.configErrorf(obj, field+".name", "no Service %s/%s; the parent is skipped", ns, ref.Name)
			continue
		}
		matched := false
		for _, p := range svc.Ports {
			if ref.Port != nil && uint32(*ref.Port) != p.Number {
				continue
			}
			if ref.SectionName != nil && string(*ref.SectionName) != p.Name {
				continue
			}
			matched = true
			if !IsHTTP(p.Protocol) {
				b.configErrorf(obj, field, "port %d of %s is %s, not HTTP, HTTP2 or GRPC; it is skipped", p.Number, svc.FQDN, p.Protocol)
				continue
			}
			if p.routedBy != "" && !strings.HasPrefix(p.routedBy, "HTTPRoute ") && !strings.HasPrefix(p.routedBy, "GRPCRoute ") {
				b.configErrorf(obj, field, "%s port %d already has routes from %s; this parent is skipped", svc.FQDN, p.Number, p.routedBy)
				continue
			}
			if p.routedBy == "" {
				p.routedBy = obj.String()
			}
			out = append(out, gammaParent{svc: svc, port: p, consumer: ns != obj.Namespace})
		}
		if !matched {
			b.configErrorf(obj, field, "Service %s/%s has no such port; the parent is skipped", ns, ref.Name)
		}
	}
	return out
}

func isCoreService(group *gatewayv1.Group, kind *gatewayv1.Kind) bool {
	return (group == nil || *group == "" || *group == "core") && (kind == nil || *kind == "Service")
}

type gammaTranslator struct {
	routeTranslator
	consumer bool
}

func (t *gammaTranslator) newRoute(name *gatewayv1.SectionName, field string) *Route {
	r := &Route{Source: t.obj.String() + " " + field, Consumer: t.consumer}
	if name != nil {
		r.Name = string(*name)
	}
	if t.consumer {
		r.Match.SourceNamespace = t.ns
	}
	return r
}

func (t *gammaTranslator) httpRules(rules []gatewayv1.HTTPRouteRule) []gammaRoute {
	var out []gammaRoute
	for i, rule := range rules {
		field := "spec.rules[" + strconv.Itoa(i) + "]"
		for j, m := range rule.Matches {
			r := t.newRoute(rule.Name, field+".matches["+strconv.Itoa(j)+"]")
			rank := httpMatch2(&r.Match, m)
			t.httpAction(r, rule, field)
			out = append(out, gammaRoute{route: r, rank: rank})
		}
	}
	return out
}

// httpMatch2 fills in an HTTPRoute match and returns its precedence rank.
func httpMatch2(out *Match, m gatewayv1.HTTPRouteMatch) []int {
	pathRank, pathLen := 0, 0
	if m.Path != nil && m.Path.Value != nil {
		v := *m.Path.Value
		switch *m.Path.Type {
		case gatewayv1.PathMatchExact:
			out.Path, pathRank = &StringMatch{Type: MatchExact, Value: v}, 3
		case gatewayv1.PathMatchRegularExpression:
			out.Path, pathRank = &StringMatch{Type: MatchRegex, Value: v}, 2
		default:
			pathRank = 1
			if v != "/" {
				out.Path = &StringMatch{Type: MatchPathPrefix, Value: v}
			}
		}
		pathLen = len(v)
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(string(h.Name)), Match: exactOrRegex(h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression, h.Value)})
	}
	method := 0
	if m.Method != nil {
		out.Headers = append(out.Headers, HeaderMatch{Name: ":method", Match: StringMatch{Type: MatchExact, Value: string(*m.Method)}})
		method = 1
	}
	for _, q := range m.QueryParams {
		out.QueryParams = append(out.QueryParams, QueryMatch{Name: string(q.Name), Match: exactOrRegex(q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression, q.Value)})
	}
	return []int{pathRank, pathLen, method, len(m.Headers), len(m.QueryParams)}
}

func exactOrRegex(regex bool, v string) StringMatch {
	if regex {
		return StringMatch{Type: MatchRegex, Value: v}
	}
	return StringMatch{Type: MatchExact, Value: v}
}

func (t *gammaTranslator) httpAction(r *Route, rule gatewayv1.HTTPRouteRule, field string) {
	for k, f := range rule.Filters {
		ff := field + ".filters[" + strconv.Itoa(k) + "]"
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			r.Headers = mergeHeaderOps(r.Headers, requestHeaderOps(f.RequestHeaderModifier))
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			r.Headers = mergeHeaderOps(r.Headers, responseHeaderOps(f.ResponseHeaderModifier))
		case gatewayv1.HTTPRouteFilterRequestMirror:
			if m, ok := t.mirror(f.RequestMirror, ff+".requestMirror"); ok {
				r.Mirrors = append(r.Mirrors, m)
			}
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			r.Redirect = gatewayRedirect(f.RequestRedirect)
		case gatewayv1.HTTPRouteFilterURLRewrite:
			r.Rewrite = gatewayRewrite(f.URLRewrite)
		case gatewayv1.HTTPRouteFilterCORS:
			r.CORS = gatewayCORS(f.CORS)
		}
	}
	if r.Redirect != nil {
		r.Mirrors, r.Rewrite = nil, nil
		return
	}
	backends := make([]backend, 0, len(rule.BackendRefs))
	for _, br := range rule.BackendRefs {
		be := backend{ref: br.BackendRef}
		for _, f := range br.Filters {
			switch f.Type {
			case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
				be.headers = mergeHeaderOps(be.headers, requestHeaderOps(f.RequestHeaderModifier))
			case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
				be.headers = mergeHeaderOps(be.headers, responseHeaderOps(f.ResponseHeaderModifier))
			}
		}
		backends = append(backends, be)
	}
	if !t.backends(r, backends, field) {
		return
	}
	if to := rule.Timeouts; to != nil {
		r.Timeout = gatewayDuration(to.Request)
	}
	r.Retry = DefaultRetry()
	if rt := rule.Retry; rt != nil {
		r.Retry = gatewayRetry(rt)
	}
	if to := rule.Timeouts; to != nil && to.BackendRequest != nil {
		if r.Retry == nil {
			r.Retry = &Retry{On: slices.Clone(defaultRetryOn), StatusCodes: slices.Clone(defaultRetryCodes)}
		}
		r.Retry.PerTryTimeout = gatewayDuration(to.BackendRequest)
	}
}

// backend is a backendRef with its per-backend header filters.
type backend struct {
	ref     gatewayv1.BackendRef
	headers *HeaderOps
}

// backends sets the destinations of r. With none that can be reached the route
// answers 500, as the Gateway API requires; it returns false then.
func (t *gammaTranslator) backends(r *Route, backends []backend, field string) bool {
	for j, be := range backends {
		bf := field + ".backendRefs[" + strconv.Itoa(j) + "]"
		ref, ok := t.backendRef(be.ref.BackendObjectReference, bf)
		if !ok {
			continue
		}
		weight := uint32(1)
		if be.ref.Weight != nil {
			weight = uint32(max(*be.ref.Weight, 0))
		}
		if weight == 0 {
			continue
		}
		r.Destinations = append(r.Destinations, Destination{Cluster: ref, Weight: weight, Headers: be.headers})
	}
	if len(r.Destinations) == 0 {
		r.DirectResponse = &DirectResponse{Status: 500, Body: "no backend for this route"}
		r.Mirrors, r.Rewrite, r.Headers = nil, nil, nil
		return false
	}
	if len(r.Destinations) == 1 && !r.Destinations[0].Headers.Empty() {
		r.Headers = mergeHeaderOps(r.Headers, r.Destinations[0].Headers)
		r.Destinations[0].Headers = nil
	}
	r.Hash = t.hashOf(r.Destinations[0].Cluster)
	return true
}

// backendRef resolves a Service backend (or mirror target) to a cluster.
func (t *gammaTranslator) backendRef(ref gatewayv1.BackendObjectReference, field string) (ClusterRef, bool) {
	if !isCoreService(ref.Group, ref.Kind) {
		return ClusterRef{}, false // reported by the unsupported-field check
	}
	ns := t.ns
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	svc := t.b.mesh.Service(names.ServiceFQDN(string(ref.Name), ns))
	if svc == nil {
		t.errorf(field+".name", "no Service %s/%s; the backend is skipped", ns, ref.Name)
		return ClusterRef{}, false
	}
	var number uint32
	if ref.Port != nil {
		number = uint32(*ref.Port)
	}
	return t.clusterRef(svc, number, "", "", field)
}

func (t *gammaTranslator) mirror(m *gatewayv1.HTTPRequestMirrorFilter, field string) (Mirror, bool) {
	if m == nil {
		return Mirror{}, false
	}
	ref, ok := t.backendRef(m.BackendRef, field+".backendRef")
	if !ok {
		return Mirror{}, false
	}
	pct := Percent(100)
	switch {
	case m.Percent != nil:
		pct = Percent(*m.Percent)
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil && *m.Fraction.Denominator > 0 {
			den = *m.Fraction.Denominator
		}
		pct = Percent(float64(m.Fraction.Numerator) * 100 / float64(den))
	}
	return Mirror{Cluster: ref, Percent: pct}, true
}

func requestHeaderOps(f *gatewayv1.HTTPHeaderFilter) *HeaderOps {
	if f == nil {
		return nil
	}
	return &HeaderOps{RequestSet: gatewayHeaders(f.Set), RequestAdd: gatewayHeaders(f.Add), RequestRemove: f.Remove}
}

func responseHeaderOps(f *gatewayv1.HTTPHeaderFilter) *HeaderOps {
	if f == nil {
		return nil
	}
	return &HeaderOps{ResponseSet: gatewayHeaders(f.Set), ResponseAdd: gatewayHeaders(f.Add), ResponseRemove: f.Remove}
}

func gatewayHeaders(hs []gatewayv1.HTTPHeader) []Header {
	var out []Header
	for _, h := range hs {
		out = append(out, Header{Name: string(h.Name), Value: h.Value})
	}
	return out
}

func gatewayRedirect(f *gatewayv1.HTTPRequestRedirectFilter) *Redirect {
	if f == nil {
		return nil
	}
	out := &Redirect{Code: 302}
	if f.Scheme != nil {
		out.Scheme = *f.Scheme
	}
	if f.Hostname != nil {
		out.Host = string(*f.Hostname)
	}
	if f.Port != nil {
		out.Port = uint32(*f.Port)
	}
	if f.StatusCode != nil {
		out.Code = uint32(*f.StatusCode)
	}
	if p := f.Path; p != nil {
		switch {
		case p.Type == gatewayv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
			out.Path = *p.ReplaceFullPath
		case p.Type == gatewayv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil:
			out.PrefixRewrite = cmp.Or(*p.ReplacePrefixMatch, "/")
		}
	}
	return out
}

func gatewayRewrite(f *gatewayv1.HTTPURLRewriteFilter) *Rewrite {
	if f == nil {
		return nil
	}
	out := &Rewrite{}
	if f.Hostname != nil {
		out.Host = string(*f.Hostname)
	}
	if p := f.Path; p != nil {
		switch {
		case p.Type == gatewayv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
			out.Regex, out.Substitution = "^/.*$", *p.ReplaceFullPath
		case p.Type == gatewayv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil:
			out.Prefix = cmp.Or(*p.ReplacePrefixMatch, "/")
		}
	}
	if *out == (Rewrite{}) {
		return nil
	}
	return out
}

// gatewayCORS converts the CORS filter. An origin "*" allows any origin; a "*" in an
// origin's host stands for any characters.
func gatewayCORS(f *gatewayv1.HTTPCORSFilter) *CORS {
	if f == nil {
		return nil
	}
	out := &CORS{AllowCredentials: f.AllowCredentials}
	for _, o := range f.AllowOrigins {
		switch s := string(o); {
		case s == "*":
			out.AllowOrigins = append(out.AllowOrigins, StringMatch{Type: MatchRegex, Value: ".*"})
		case strings.Contains(s, "*"):
			out.AllowOrigins = append(out.AllowOrigins, StringMatch{Type: MatchRegex,
				Value: strings.ReplaceAll(regexp.QuoteMeta(s), `\*`, ".*")})
		default:
			out.AllowOrigins = append(out.AllowOrigins, StringMatch{Type: MatchExact, Value: s})
		}
	}
	for _, m := range f.AllowMethods {
		out.AllowMethods = append(out.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		out.AllowHeaders = append(out.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		out.ExposeHeaders = append(out.ExposeHeaders, string(h))
	}
	if f.MaxAge > 0 {
		out.MaxAge = new(Duration(time.Duration(f.MaxAge) * time.Second))
	}
	return out
}

// gatewayDuration parses a Gateway API duration (validated by config); nil for none
// or zero (zero disables the timeout).
func gatewayDuration(d *gatewayv1.Duration) *Duration {
	if d == nil {
		return nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil || v == 0 {
		return nil
	}
	out := Duration(v)
	return &out
}

// gatewayRetry converts an HTTPRoute retry: the listed status codes, plus the
// connection failures an implementation should always retry.
func gatewayRetry(rt *gatewayv1.HTTPRouteRetry) *Retry {
	attempts := 2
	if rt.Attempts != nil {
		attempts = *rt.Attempts
	}
	if attempts <= 0 {
		return nil
	}
	out := &Retry{Attempts: uint32(attempts), On: []string{"connect-failure", "refused-stream", "reset"}, Backoff: gatewayDuration(rt.Backoff)}
	for _, c := range rt.Codes {
		out.StatusCodes = appendNew(out.StatusCodes, uint32(c))
	}
	if len(out.StatusCodes) > 0 {
		out.On = append(out.On, "retriable-status-codes")
	}
	return out
}

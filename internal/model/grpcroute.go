package model

import (
	"cmp"
	"regexp"
	"strconv"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GRPCRoutes in mesh mode: attached, ranked and filtered like HTTPRoutes (gamma.go);
// a method match becomes a path match on /<service>/<method>.

func (t *gammaTranslator) grpcRules(rules []gatewayv1.GRPCRouteRule) []gammaRoute {
	var out []gammaRoute
	for i, rule := range rules {
		field := "spec.rules[" + strconv.Itoa(i) + "]"
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gatewayv1.GRPCRouteMatch{{}}
		}
		for j, m := range matches {
			r := t.newRoute(rule.Name, field+".matches["+strconv.Itoa(j)+"]")
			rank := grpcMatch(&r.Match, m)
			t.grpcAction(r, rule, field)
			out = append(out, gammaRoute{route: r, rank: rank})
		}
	}
	return out
}

// grpcMatch turns a gRPC method match into a path match (/<service>/<method>) and
// returns the match's precedence rank.
func grpcMatch(out *Match, m gatewayv1.GRPCRouteMatch) []int {
	var service, method string
	exact := true
	if mm := m.Method; mm != nil {
		if mm.Service != nil {
			service = *mm.Service
		}
		if mm.Method != nil {
			method = *mm.Method
		}
		exact = mm.Type == nil || *mm.Type == gatewayv1.GRPCMethodMatchExact
		switch {
		case !exact:
			out.Path = &StringMatch{Type: MatchRegex, Value: "/" + cmp.Or(service, "[^/]+") + "/" + cmp.Or(method, "[^/]+")}
		case service != "" && method != "":
			out.Path = &StringMatch{Type: MatchExact, Value: "/" + service + "/" + method}
		case service != "":
			out.Path = &StringMatch{Type: MatchPrefix, Value: "/" + service + "/"}
		case method != "":
			out.Path = &StringMatch{Type: MatchRegex, Value: "/[^/]+/" + regexp.QuoteMeta(method)}
		}
	}
	for _, h := range m.Headers {
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(string(h.Name)), Match: exactOrRegex(h.Type != nil && *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression, h.Value)})
	}
	return []int{boolInt(exact && service != "" && method != ""), len(service), len(method), len(m.Headers)}
}

func (t *gammaTranslator) grpcAction(r *Route, rule gatewayv1.GRPCRouteRule, field string) {
	for k, f := range rule.Filters {
		ff := field + ".filters[" + strconv.Itoa(k) + "]"
		switch f.Type {
		case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
			r.Headers = mergeHeaderOps(r.Headers, requestHeaderOps(f.RequestHeaderModifier))
		case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
			r.Headers = mergeHeaderOps(r.Headers, responseHeaderOps(f.ResponseHeaderModifier))
		case gatewayv1.GRPCRouteFilterRequestMirror:
			if m, ok := t.mirror(f.RequestMirror, ff+".requestMirror"); ok {
				r.Mirrors = append(r.Mirrors, m)
			}
		}
	}
	backends := make([]backend, 0, len(rule.BackendRefs))
	for _, br := range rule.BackendRefs {
		be := backend{ref: br.BackendRef}
		for _, f := range br.Filters {
			switch f.Type {
			case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
				be.headers = mergeHeaderOps(be.headers, requestHeaderOps(f.RequestHeaderModifier))
			case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
				be.headers = mergeHeaderOps(be.headers, responseHeaderOps(f.ResponseHeaderModifier))
			}
		}
		backends = append(backends, be)
	}
	if t.backends(r, backends, field) {
		r.Retry = DefaultRetry()
	}
}

package config

import (
	"regexp"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The Gateway API routes are plain Go structs (sigs.k8s.io/gateway-api/apis/v1), walked
// like the Kubernetes kinds. HTTPRoute is also accepted as v1beta1 (the same schema) and
// decoded into the v1 type. After decoding, the defaults the Gateway API CRDs declare
// are applied, as a Kubernetes API server would, so that the translation sees the same
// object in local mode and in Kubernetes.

// GatewayGroup is the Gateway API's group.
const GatewayGroup = "gateway.networking.k8s.io"

// HTTPRoute is a decoded, defaulted and checked Gateway API HTTPRoute document.
type HTTPRoute struct {
	Pos Position
	*gatewayv1.HTTPRoute
}

// GRPCRoute is a decoded, defaulted and checked Gateway API GRPCRoute document.
type GRPCRoute struct {
	Pos Position
	*gatewayv1.GRPCRoute
}

func (o HTTPRoute) ref() ObjectRef { return refOf("HTTPRoute", &o.ObjectMeta, o.Pos) }
func (o GRPCRoute) ref() ObjectRef { return refOf("GRPCRoute", &o.ObjectMeta, o.Pos) }

func gatewayKinds() map[typeKey]decodeFunc {
	httpRoute := decodeObject(checkHTTPRoute, func(s *Set, p Position, o *gatewayv1.HTTPRoute) {
		s.HTTPRoutes = append(s.HTTPRoutes, HTTPRoute{p, o})
	})
	grpcRoute := decodeObject(checkGRPCRoute, func(s *Set, p Position, o *gatewayv1.GRPCRoute) {
		s.GRPCRoutes = append(s.GRPCRoutes, GRPCRoute{p, o})
	})
	out := map[typeKey]decodeFunc{}
	addVersions(out, GatewayGroup, []string{"v1", "v1beta1"}, map[string]decodeFunc{"HTTPRoute": httpRoute})
	addVersions(out, GatewayGroup, []string{"v1"}, map[string]decodeFunc{"GRPCRoute": grpcRoute})
	return out
}

// checkHTTPRoute defaults and validates an HTTPRoute.
func checkHTTPRoute(d *document, r *gatewayv1.HTTPRoute) {
	defaultParentRefs(r.Spec.ParentRefs)
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		if len(rule.Matches) == 0 {
			rule.Matches = []gatewayv1.HTTPRouteMatch{{}}
		}
		for j := range rule.Matches {
			defaultHTTPMatch(&rule.Matches[j])
		}
		for j := range rule.BackendRefs {
			defaultBackendRef(&rule.BackendRefs[j].BackendRef)
		}
	}
	validateHTTPRoute(d, r)
}

func defaultHTTPMatch(m *gatewayv1.HTTPRouteMatch) {
	if m.Path == nil {
		m.Path = &gatewayv1.HTTPPathMatch{}
	}
	m.Path.Type = orDefault(m.Path.Type, gatewayv1.PathMatchPathPrefix)
	m.Path.Value = orDefault(m.Path.Value, "/")
	for k := range m.Headers {
		m.Headers[k].Type = orDefault(m.Headers[k].Type, gatewayv1.HeaderMatchExact)
	}
	for k := range m.QueryParams {
		m.QueryParams[k].Type = orDefault(m.QueryParams[k].Type, gatewayv1.QueryParamMatchExact)
	}
}

// checkGRPCRoute defaults and validates a GRPCRoute.
func checkGRPCRoute(d *document, r *gatewayv1.GRPCRoute) {
	defaultParentRefs(r.Spec.ParentRefs)
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		for j := range rule.Matches {
			m := &rule.Matches[j]
			if m.Method != nil {
				m.Method.Type = orDefault(m.Method.Type, gatewayv1.GRPCMethodMatchExact)
			}
			for k := range m.Headers {
				m.Headers[k].Type = orDefault(m.Headers[k].Type, gatewayv1.GRPCHeaderMatchExact)
			}
		}
		for j := range rule.BackendRefs {
			defaultBackendRef(&rule.BackendRefs[j].BackendRef)
		}
	}
	validateGRPCRoute(d, r)
}

// defaultParentRefs applies the CRD defaults: a parent is a Gateway unless it says
// otherwise; a Service parent says group "" and kind Service.
func defaultParentRefs(refs []gatewayv1.ParentReference) {
	for i := range refs {
		refs[i].Group = orDefault(refs[i].Group, gatewayv1.Group(GatewayGroup))
		refs[i].Kind = orDefault(refs[i].Kind, gatewayv1.Kind("Gateway"))
	}
}

// defaultBackendRef applies the CRD defaults: a core Service, weight 1.
func defaultBackendRef(b *gatewayv1.BackendRef) {
	b.Group = orDefault(b.Group, gatewayv1.Group(""))
	b.Kind = orDefault(b.Kind, gatewayv1.Kind("Service"))
	b.Weight = orDefault(b.Weight, int32(1))
}

func orDefault[T any](p *T, v T) *T {
	if p != nil {
		return p
	}
	return &v
}

func validateHTTPRoute(d *document, r *gatewayv1.HTTPRoute) {
	spec := field("spec")
	validateParentRefs(d, r.Spec.ParentRefs)
	for i, rule := range r.Spec.Rules {
		p := spec.key("rules").index(i)
		for j, m := range rule.Matches {
			mp := p.key("matches").index(j)
			if m.Method != nil && !isHTTPMethod(*m.Method) {
				d.errorf(mp.key("method"), "unknown method %q: use GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE or PATCH", *m.Method)
			}
			switch *m.Path.Type {
			case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix, gatewayv1.PathMatchRegularExpression:
			default:
				d.errorf(mp.key("path").key("type"), "unknown path match type %q: use Exact, PathPrefix or RegularExpression", *m.Path.Type)
			}
			for k, h := range m.Headers {
				if *h.Type != gatewayv1.HeaderMatchExact && *h.Type != gatewayv1.HeaderMatchRegularExpression {
					d.errorf(mp.key("headers").index(k).key("type"), "unknown header match type %q: use Exact or RegularExpression", *h.Type)
				}
			}
			for k, q := range m.QueryParams {
				if *q.Type != gatewayv1.QueryParamMatchExact && *q.Type != gatewayv1.QueryParamMatchRegularExpression {
					d.errorf(mp.key("queryParams").index(k).key("type"), "unknown query parameter match type %q: use Exact or RegularExpression", *q.Type)
				}
			}
		}
		for j, b := range rule.BackendRefs {
			validateBackendRef(d, p.key("backendRefs").index(j), b.BackendRef)
		}
		if t := rule.Timeouts; t != nil {
			validateGatewayDuration(d, p.key("timeouts").key("request"), t.Request)
			validateGatewayDuration(d, p.key("timeouts").key("backendRequest"), t.BackendRequest)
		}
		if rule.Retry != nil {
			validateGatewayDuration(d, p.key("retry").key("backoff"), rule.Retry.Backoff)
		}
	}
	checkHTTPRouteRegexes(d, r) // routecheck.go
}

func validateGRPCRoute(d *document, r *gatewayv1.GRPCRoute) {
	spec := field("spec")
	validateParentRefs(d, r.Spec.ParentRefs)
	for i, rule := range r.Spec.Rules {
		p := spec.key("rules").index(i)
		for j, m := range rule.Matches {
			mp := p.key("matches").index(j)
			if m.Method != nil {
				if *m.Method.Type != gatewayv1.GRPCMethodMatchExact && *m.Method.Type != gatewayv1.GRPCMethodMatchRegularExpression {
					d.errorf(mp.key("method").key("type"), "unknown method match type %q: use Exact or RegularExpression", *m.Method.Type)
				}
				if m.Method.Service == nil && m.Method.Method == nil {
					d.errorf(mp.key("method"), "one of service or method is required")
				}
			}
			for k, h := range m.Headers {
				if *h.Type != gatewayv1.GRPCHeaderMatchExact && *h.Type != gatewayv1.GRPCHeaderMatchRegularExpression {
					d.errorf(mp.key("headers").index(k).key("type"), "unknown header match type %q: use Exact or RegularExpression", *h.Type)
				}
			}
		}
		for j, b := range rule.BackendRefs {
			validateBackendRef(d, p.key("backendRefs").index(j), b.BackendRef)
		}
	}
	checkGRPCRouteRegexes(d, r) // routecheck.go
}

func validateParentRefs(d *document, refs []gatewayv1.ParentReference) {
	p := field("spec", "parentRefs")
	if len(refs) == 0 {
		d.errorf(p, "required: in the mesh a route attaches to a Service, such as {group: \"\", kind: Service, name: reviews}")
	}
	for i, r := range refs {
		if r.Name == "" {
			d.errorf(p.index(i).key("name"), "required")
		}
		if r.Port != nil && (*r.Port < 1 || *r.Port > 65535) {
			d.errorf(p.index(i).key("port"), "port %d is out of range 1..65535", *r.Port)
		}
	}
}

func validateBackendRef(d *document, p fieldPath, b gatewayv1.BackendRef) {
	if b.Name == "" {
		d.errorf(p.key("name"), "required")
	}
	if b.Port != nil && (*b.Port < 1 || *b.Port > 65535) {
		d.errorf(p.key("port"), "port %d is out of range 1..65535", *b.Port)
	}
	if w := *b.Weight; w < 0 || w > 1000000 {
		d.errorf(p.key("weight"), "weight %d is out of range 0..1000000", w)
	}
}

// gatewayDuration is the Gateway API's duration syntax (GEP-2257).
var gatewayDuration = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

func validateGatewayDuration(d *document, p fieldPath, v *gatewayv1.Duration) {
	if v != nil && !gatewayDuration.MatchString(string(*v)) {
		d.errorf(p, "invalid duration %q: write whole numbers with units h, m, s or ms, such as \"500ms\" or \"1m30s\"", *v)
	}
}

func isHTTPMethod(m gatewayv1.HTTPMethod) bool {
	switch m {
	case gatewayv1.HTTPMethodGet, gatewayv1.HTTPMethodHead, gatewayv1.HTTPMethodPost, gatewayv1.HTTPMethodPut,
		gatewayv1.HTTPMethodDelete, gatewayv1.HTTPMethodConnect, gatewayv1.HTTPMethodOptions,
		gatewayv1.HTTPMethodTrace, gatewayv1.HTTPMethodPatch:
		return true
	}
	return false
}

package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestGatewayRoutes(t *testing.T) {
	serviceParent := gatewayv1.ParentReference{
		Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: "reviews", Port: ptr(gatewayv1.PortNumber(9080)),
	}
	backend := func(name string, weight int32) gatewayv1.BackendRef {
		return gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{
				Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")),
				Name: gatewayv1.ObjectName(name), Port: ptr(gatewayv1.PortNumber(9080)),
			},
			Weight: ptr(weight),
		}
	}
	tests := []struct {
		name string
		src  string
		got  func(*Set) any
		want any
	}{
		{
			name: "HTTPRoute with a Service parent routes by header, CRD defaults applied",
			src: lines(
				"apiVersion: gateway.networking.k8s.io/v1",
				"kind: HTTPRoute",
				"metadata: {name: reviews}",
				"spec:",
				"  parentRefs:",
				"  - {group: \"\", kind: Service, name: reviews, port: 9080}",
				"  rules:",
				"  - matches:",
				"    - headers: [{name: end-user, value: jason}]",
				"    backendRefs: [{name: reviews-v2, port: 9080}]",
				"  - backendRefs:",
				"    - {name: reviews-v1, port: 9080, weight: 90}",
				"    - {name: reviews-v3, port: 9080, weight: 10}",
				"    timeouts: {request: 500ms}",
			),
			got: func(s *Set) any { return s.HTTPRoutes[0].Spec },
			want: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{serviceParent}},
				Rules: []gatewayv1.HTTPRouteRule{
					{
						Matches: []gatewayv1.HTTPRouteMatch{{
							Path:    &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")},
							Headers: []gatewayv1.HTTPHeaderMatch{{Type: ptr(gatewayv1.HeaderMatchExact), Name: "end-user", Value: "jason"}},
						}},
						BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: backend("reviews-v2", 1)}},
					},
					{
						Matches: []gatewayv1.HTTPRouteMatch{{
							Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")},
						}},
						BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: backend("reviews-v1", 90)}, {BackendRef: backend("reviews-v3", 10)}},
						Timeouts:    &gatewayv1.HTTPRouteTimeouts{Request: ptr(gatewayv1.Duration("500ms"))},
					},
				},
			},
		},
		{
			name: "HTTPRoute v1beta1 with filters",
			src: lines(
				"apiVersion: gateway.networking.k8s.io/v1beta1",
				"kind: HTTPRoute",
				"metadata: {name: reviews, namespace: prod}",
				"spec:",
				"  parentRefs: [{name: mesh-gw}]",
				"  rules:",
				"  - matches: [{path: {type: Exact, value: /x}, method: GET}]",
				"    filters:",
				"    - type: RequestHeaderModifier",
				"      requestHeaderModifier: {set: [{name: x-a, value: b}], remove: [x-c]}",
			),
			got: func(s *Set) any {
				return []any{s.HTTPRoutes[0].APIVersion, s.HTTPRoutes[0].Namespace, s.HTTPRoutes[0].Spec}
			},
			want: []any{"gateway.networking.k8s.io/v1beta1", "prod", gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
					Group: ptr(gatewayv1.Group(GatewayGroup)), Kind: ptr(gatewayv1.Kind("Gateway")), Name: "mesh-gw",
				}}},
				Rules: []gatewayv1.HTTPRouteRule{{
					Matches: []gatewayv1.HTTPRouteMatch{{
						Path:   &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchExact), Value: ptr("/x")},
						Method: ptr(gatewayv1.HTTPMethodGet),
					}},
					Filters: []gatewayv1.HTTPRouteFilter{{
						Type: gatewayv1.HTTPRouteFilterRequestHeaderModifier,
						RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{
							Set: []gatewayv1.HTTPHeader{{Name: "x-a", Value: "b"}}, Remove: []string{"x-c"},
						},
					}},
				}},
			}},
		},
		{
			name: "GRPCRoute by service and method",
			src: lines(
				"apiVersion: gateway.networking.k8s.io/v1",
				"kind: GRPCRoute",
				"metadata: {name: echo}",
				"spec:",
				"  parentRefs: [{group: \"\", kind: Service, name: reviews, port: 9080}]",
				"  rules:",
				"  - matches: [{method: {service: echo.Echo, method: Say}}]",
				"    backendRefs: [{name: reviews-v2, port: 9080}]",
			),
			got: func(s *Set) any { return s.GRPCRoutes[0].Spec },
			want: gatewayv1.GRPCRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{serviceParent}},
				Rules: []gatewayv1.GRPCRouteRule{{
					Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{
						Type: ptr(gatewayv1.GRPCMethodMatchExact), Service: ptr("echo.Echo"), Method: ptr("Say"),
					}}},
					BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: backend("reviews-v2", 1)}},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseOne(t, tt.src)
			if diff := cmp.Diff(tt.want, tt.got(set)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestGatewayErrors(t *testing.T) {
	route := lines(
		"apiVersion: gateway.networking.k8s.io/v1", // 1
		"kind: HTTPRoute",                          // 2
		"metadata: {name: r}",                      // 3
		"spec:",                                    // 4
		"  parentRefs: [{kind: Service, group: \"\", name: r}]", // 5
		"  rules:", // 6
	)
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "no parentRefs",
			src:  lines("apiVersion: gateway.networking.k8s.io/v1", "kind: HTTPRoute", "metadata: {name: r}", "spec:", "  rules: []"),
			want: []string{`mesh.yaml:4: HTTPRoute default/r: spec.parentRefs: required: in the mesh a route attaches to a Service, such as {group: "", kind: Service, name: reviews}`},
		},
		{
			name: "unknown field with a suggestion",
			src:  route + lines("  - backendRefs: [{name: a, pory: 80}]"),
			want: []string{`mesh.yaml:7: HTTPRoute default/r: spec.rules[0].backendRefs[0].pory: unknown field (did you mean "port"?)`},
		},
		{
			name: "wrong type",
			src:  route + lines("  - backendRefs:", "    - name: a", "      weight: abc"),
			want: []string{`mesh.yaml:9: HTTPRoute default/r: spec.rules[0].backendRefs[0].weight: wrong type: expected an integer, got string "abc"`},
		},
		{
			name: "bad enums, weight and duration",
			src: route + lines(
				"  - matches:",               // 7
				"    - path: {type: Prefix}", // 8
				"      method: get",          // 9
				"      headers: [{name: a, value: b, type: Regex}]", // 10
				"    backendRefs: [{name: a, weight: 2000000}]",     // 11
				"    timeouts: {request: 1.5s}",                     // 12
			),
			want: []string{
				`mesh.yaml:8: HTTPRoute default/r: spec.rules[0].matches[0].path.type: unknown path match type "Prefix": use Exact, PathPrefix or RegularExpression`,
				`mesh.yaml:9: HTTPRoute default/r: spec.rules[0].matches[0].method: unknown method "get": use GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE or PATCH`,
				`mesh.yaml:10: HTTPRoute default/r: spec.rules[0].matches[0].headers[0].type: unknown header match type "Regex": use Exact or RegularExpression`,
				`mesh.yaml:11: HTTPRoute default/r: spec.rules[0].backendRefs[0].weight: weight 2000000 is out of range 0..1000000`,
				`mesh.yaml:12: HTTPRoute default/r: spec.rules[0].timeouts.request: invalid duration "1.5s": write whole numbers with units h, m, s or ms, such as "500ms" or "1m30s"`,
			},
		},
		{
			name: "GRPCRoute method match without service or method",
			src: lines("apiVersion: gateway.networking.k8s.io/v1", "kind: GRPCRoute", "metadata: {name: r}", "spec:",
				"  parentRefs: [{name: r}]", "  rules:", "  - matches: [{method: {type: Exact}}]"),
			want: []string{`mesh.yaml:7: GRPCRoute default/r: spec.rules[0].matches[0].method: one of service or method is required`},
		},
		{
			name: "GRPCRoute is v1 only",
			src:  lines("apiVersion: gateway.networking.k8s.io/v1beta1", "kind: GRPCRoute", "metadata: {name: r}"),
			want: []string{`mesh.yaml:2: GRPCRoute default/r: kind: unknown kind "GRPCRoute" in apiVersion "gateway.networking.k8s.io/v1beta1" (supported: gateway.networking.k8s.io/v1 GRPCRoute)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("mesh.yaml", []byte(tt.src))
			if set != nil {
				t.Errorf("Parse returned a Set along with errors")
			}
			if diff := cmp.Diff(tt.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

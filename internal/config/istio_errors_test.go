package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIstioErrors(t *testing.T) {
	vs := lines(
		"apiVersion: networking.istio.io/v1", // 1
		"kind: VirtualService",               // 2
		"metadata: {name: reviews}",          // 3
		"spec:",                              // 4
		"  hosts: [reviews]",                 // 5
		"  http:",                            // 6
		"  - route:",                         // 7
		"    - destination:",                 // 8
		"        host: reviews",              // 9
	)
	pa := lines(
		"apiVersion: security.istio.io/v1", // 1
		"kind: PeerAuthentication",         // 2
		"metadata: {name: default}",        // 3
		"spec:",                            // 4
	)
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "unknown field deep in a VirtualService",
			src:  vs + lines("        hostt: reviews"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].route[0].destination.hostt: unknown field (did you mean "host"?)`},
		},
		{
			name: "unknown field: swapped letters",
			src:  vs + lines("    retires: {attempts: 3}"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].retires: unknown field (did you mean "retries"?)`},
		},
		{
			name: "unknown field: proto name misspelt",
			src:  vs + lines("    retries: {per_try_timout: 1s}"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].retries.per_try_timout: unknown field (did you mean "per_try_timeout"?)`},
		},
		{
			name: "unknown field far from any known one",
			src:  vs + lines("    zzzzzz: 1"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].zzzzzz: unknown field`},
		},
		{
			name: "wrong type: weight abc",
			src:  vs + lines("      weight: abc"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].route[0].weight: wrong type: expected an integer, got string "abc"`},
		},
		{
			name: "integer out of range for int32",
			src:  vs + lines("      weight: 3000000000"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].route[0].weight: 3000000000 is out of range for a 32-bit integer (-2147483648 to 2147483647)`},
		},
		{
			name: "wrong type: timeout as a number",
			src:  vs + lines("    timeout: 5"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].timeout: wrong type: expected a duration string such as "1.5s", "100ms" or "5m", got number 5`},
		},
		{
			name: "invalid duration string",
			src:  vs + lines("    timeout: 5 seconds"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].timeout: invalid duration "5 seconds": expected a duration string such as "1.5s", "100ms" or "5m"`},
		},
		{
			name: "wrong type: mapping for a string",
			src:  vs + lines("    - destination: {host: {name: x}}"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].route[1].destination.host: wrong type: expected a string, got a mapping`},
		},
		{
			name: "wrong type: string for a list",
			src:  lines("apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata: {name: r}", "spec:", "  hosts: reviews"),
			want: []string{`mesh.yaml:5: VirtualService default/r: spec.hosts: wrong type: expected a list, got string "reviews"`},
		},
		{
			name: "wrong type: wrapper",
			src: lines("apiVersion: networking.istio.io/v1", "kind: DestinationRule", "metadata: {name: r}", "spec:", "  host: r",
				"  trafficPolicy:", "    outlierDetection: {consecutive5xxErrors: -1}"),
			want: []string{`mesh.yaml:7: DestinationRule default/r: spec.trafficPolicy.outlierDetection.consecutive5xxErrors: -1 is out of range for an unsigned 32-bit integer (0 to 4294967295)`},
		},
		{
			name: "two fields of a oneof",
			src:  vs + lines("    match:", "    - uri: {exact: /a,", "            prefix: /b}"),
			want: []string{`mesh.yaml:12: VirtualService default/reviews: spec.http[0].match[0].uri.prefix: only one of exact, prefix or regex may be set, and "exact" is already set at line 11`},
		},
		{
			name: "one field under both of its names",
			src:  vs + lines("    retries: {perTryTimeout: 1s, per_try_timeout: 2s}"),
			want: []string{`mesh.yaml:10: VirtualService default/reviews: spec.http[0].retries.per_try_timeout: duplicate field: also written as "perTryTimeout" at line 10`},
		},
		{
			name: "null in a list",
			src:  lines("apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata: {name: r}", "spec:", "  hosts:", "  - r", "  -"),
			want: []string{`mesh.yaml:7: VirtualService default/r: spec.hosts[1]: null is not allowed here`},
		},
		{
			name: "enum in the wrong case",
			src:  pa + lines("  mtls:", "    mode: strict"),
			want: []string{`mesh.yaml:6: PeerAuthentication default/default: spec.mtls.mode: unknown value "strict" (did you mean "STRICT"?); expected one of UNSET, DISABLE, PERMISSIVE, STRICT`},
		},
		{
			name: "map key of the wrong type",
			src:  pa + lines("  selector: {matchLabels: {app: a}}", "  portLevelMtls:", "    http: {mode: STRICT}"),
			want: []string{`mesh.yaml:7: PeerAuthentication default/default: spec.portLevelMtls.http: wrong type: key must be an unsigned 32-bit integer`},
		},
		{
			name: "portLevelMtls without a selector, port out of range",
			src:  pa + lines("  portLevelMtls:", "    0: {mode: STRICT}"),
			want: []string{
				`mesh.yaml:5: PeerAuthentication default/default: spec.portLevelMtls: needs a workload selector: port-level settings apply to the ports of selected workloads`,
				`mesh.yaml:6: PeerAuthentication default/default: spec.portLevelMtls.0: port 0 is out of range 1..65535`,
			},
		},
		{
			name: "VirtualService without hosts",
			src:  lines("apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata: {name: r}", "spec:", "  http:", "  - route: [{destination: {host: r}}]"),
			want: []string{`mesh.yaml:4: VirtualService default/r: spec.hosts: required: at least one host (delegate VirtualServices, which have none, are not supported)`},
		},
		{
			name: "weight out of range, destination without host, route going nowhere",
			src: vs + lines(
				"      weight: 150",                          // 10
				"    - destination: {subset: v1}",            // 11
				"  - match: [{uri: {prefix: /a}}]",           // 12
				"  tcp:",                                     // 13
				"  - route:",                                 // 14
				"    - {destination: {host: r}, weight: -1}", // 15
			),
			want: []string{
				`mesh.yaml:10: VirtualService default/reviews: spec.http[0].route[0].weight: weight 150 is out of range 0..100`,
				`mesh.yaml:11: VirtualService default/reviews: spec.http[0].route[1].destination.host: required`,
				`mesh.yaml:12: VirtualService default/reviews: spec.http[1]: an HTTP route needs a route, a redirect or a directResponse`,
				`mesh.yaml:15: VirtualService default/reviews: spec.tcp[0].route[0].weight: weight -1 is out of range 0..100`,
			},
		},
		{
			name: "percentages out of range",
			src:  vs + lines("    mirrorPercentage: {value: 101}", "    fault: {abort: {httpStatus: 503, percentage: {value: -1}}}"),
			want: []string{
				`mesh.yaml:10: VirtualService default/reviews: spec.http[0].mirrorPercentage.value: percentage 101 is out of range 0..100`,
				`mesh.yaml:11: VirtualService default/reviews: spec.http[0].fault.abort.percentage.value: percentage -1 is out of range 0..100`,
			},
		},
		{
			name: "DestinationRule without host, duplicate subsets",
			src: lines("apiVersion: networking.istio.io/v1", "kind: DestinationRule", "metadata: {name: r}", "spec:",
				"  subsets:", "  - {name: v1}", "  - {name: v1}", "  - {labels: {a: b}}"),
			want: []string{
				`mesh.yaml:4: DestinationRule default/r: spec.host: required`,
				`mesh.yaml:7: DestinationRule default/r: spec.subsets[1].name: duplicate subset name "v1" (also subsets[0])`,
				`mesh.yaml:8: DestinationRule default/r: spec.subsets[2].name: required`,
			},
		},
		{
			name: "ServiceEntry without hosts, port out of range",
			src: lines("apiVersion: networking.istio.io/v1", "kind: ServiceEntry", "metadata: {name: r}", "spec:",
				"  ports: [{number: 70000, name: http}]"),
			want: []string{
				`mesh.yaml:4: ServiceEntry default/r: spec.hosts: required: at least one host`,
				`mesh.yaml:5: ServiceEntry default/r: spec.ports[0].number: port 70000 is out of range 1..65535`,
			},
		},
		{
			name: "CUSTOM without provider, selector with targetRefs",
			src: lines("apiVersion: security.istio.io/v1", "kind: AuthorizationPolicy", "metadata: {name: r}", "spec:",
				"  action: CUSTOM", "  selector: {matchLabels: {a: b}}", "  targetRefs: [{kind: Service, name: a}]"),
			want: []string{
				`mesh.yaml:4: AuthorizationPolicy default/r: spec.provider: required: a CUSTOM policy names its external authorizer`,
				`mesh.yaml:6: AuthorizationPolicy default/r: spec.selector: selector and targetRef(s) cannot both be set`,
			},
		},
		{
			name: "JWT rule without issuer",
			src: lines("apiVersion: security.istio.io/v1beta1", "kind: RequestAuthentication", "metadata: {name: r}", "spec:",
				"  jwtRules:", "  - jwksUri: https://example.com/jwks"),
			want: []string{`mesh.yaml:6: RequestAuthentication default/r: spec.jwtRules[0].issuer: required`},
		},
		{
			name: "invalid name",
			src:  lines("apiVersion: networking.istio.io/v1", "kind: Sidecar", "metadata: {name: Default}"),
			want: []string{`mesh.yaml:3: Sidecar default/Default: metadata.name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		},
		{
			name: "Sidecar egress hosts that are not namespace/host",
			src: lines("apiVersion: networking.istio.io/v1", "kind: Sidecar", "metadata: {name: s, namespace: shop}", "spec:",
				"  egress:",
				`  - hosts: ["reviews", "./*", "~/*", "Bad_NS/*", "*/a*b"]`,
				"  - hosts: []"),
			want: []string{
				`mesh.yaml:6: Sidecar shop/s: spec.egress[0].hosts[0]: host "reviews" must be namespace/host, such as "./*", "*/*" or "istio-system/*"`,
				`mesh.yaml:6: Sidecar shop/s: spec.egress[0].hosts[2]: host "~/*": the namespace "~" (no namespace) is not supported`,
				`mesh.yaml:6: Sidecar shop/s: spec.egress[0].hosts[3]: host "Bad_NS/*": namespace "Bad_NS": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`mesh.yaml:6: Sidecar shop/s: spec.egress[0].hosts[4]: host "*/a*b": the host must be "*", "*.suffix" or a host name`,
				`mesh.yaml:7: Sidecar shop/s: spec.egress[1].hosts: required: at least one host, as namespace/host`,
			},
		},
		{
			name: "exportTo values",
			src: lines("apiVersion: networking.istio.io/v1", "kind: ServiceEntry", "metadata: {name: s}", "spec:",
				"  hosts: [api.example.com]",
				`  exportTo: [".", "*", "shop", "~", "No"]`),
			want: []string{
				`mesh.yaml:6: ServiceEntry default/s: spec.exportTo[3]: "~" (visible to no namespace) is not supported: remove the resource instead`,
				`mesh.yaml:6: ServiceEntry default/s: spec.exportTo[4]: "No" is not ".", "*" or a namespace name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			},
		},
		{
			name: "unknown apiVersion of an Istio kind",
			src:  lines("apiVersion: security.istio.io/v1alpha3", "kind: PeerAuthentication", "metadata: {name: r}"),
			want: []string{`mesh.yaml:2: PeerAuthentication default/r: kind: unknown kind "PeerAuthentication" in apiVersion "security.istio.io/v1alpha3" (supported: security.istio.io/v1 PeerAuthentication, security.istio.io/v1beta1 PeerAuthentication)`},
		},
		{
			name: "unsupported Istio kind",
			src:  lines("apiVersion: networking.istio.io/v1", "kind: EnvoyFilter", "metadata: {name: r}"),
			want: []string{`mesh.yaml:2: EnvoyFilter default/r: kind: unknown kind "EnvoyFilter" in apiVersion "networking.istio.io/v1" (supported: networking.istio.io/v1 DestinationRule, networking.istio.io/v1 ServiceEntry, networking.istio.io/v1 Sidecar, networking.istio.io/v1 VirtualService, networking.istio.io/v1 WorkloadEntry)`},
		},
		{
			name: "unknown apiVersion and kind",
			src:  lines("apiVersion: example.com/v1", "kind: Widget", "metadata: {name: r}"),
			want: []string{`mesh.yaml:2: Widget default/r: kind: unknown kind "Widget" in apiVersion "example.com/v1" (supported kinds: AuthorizationPolicy, DestinationRule, GRPCRoute, HTTPRoute, PeerAuthentication, RateLimitPolicy, RequestAuthentication, Service, ServiceEntry, Sidecar, VirtualService, Workload, WorkloadEntry)`},
		},
		{
			name: "the same object under two apiVersions",
			src: lines("apiVersion: networking.istio.io/v1", "kind: Sidecar", "metadata: {name: default}", "---",
				"apiVersion: networking.istio.io/v1alpha3", "kind: Sidecar", "metadata: {name: default, namespace: default}"),
			want: []string{`mesh.yaml:5: Sidecar default/default: defined twice: here and at mesh.yaml:1 (the one at mesh.yaml:1 is used)`},
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

package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouteChecks(t *testing.T) {
	vs := lines(
		"apiVersion: networking.istio.io/v1", // 1
		"kind: VirtualService",               // 2
		"metadata: {name: reviews}",          // 3
		"spec:",                              // 4
		"  hosts: [reviews]",                 // 5
		"  http:",                            // 6
	)
	httpRoute := lines(
		"apiVersion: gateway.networking.k8s.io/v1", // 1
		"kind: HTTPRoute",                          // 2
		"metadata: {name: reviews}",                // 3
		"spec:",                                    // 4
		"  parentRefs: [{kind: Service, group: \"\", name: reviews}]", // 5
		"  rules:", // 6
	)
	grpcRoute := lines(
		"apiVersion: gateway.networking.k8s.io/v1", // 1
		"kind: GRPCRoute",                          // 2
		"metadata: {name: echo}",                   // 3
		"spec:",                                    // 4
		"  parentRefs: [{kind: Service, group: \"\", name: echo}]", // 5
		"  rules:", // 6
	)
	tests := []struct {
		name string
		src  string
		want []string // nil: valid
	}{
		{
			name: "weights add up to 100",
			src: vs + lines(
				"  - route:",
				"    - {destination: {host: reviews, subset: v1}, weight: 75}",
				"    - {destination: {host: reviews, subset: v2}, weight: 25}",
			),
		},
		{
			name: "weights add up to 90",
			src: vs + lines(
				"  - route:", // 7
				"    - {destination: {host: reviews, subset: v1}, weight: 80}",
				"    - {destination: {host: reviews, subset: v2}, weight: 10}",
			),
			want: []string{"mesh.yaml:7: VirtualService default/reviews: spec.http[0].route: the weights of the 2 destinations add up to 90; they must add up to 100"},
		},
		{
			name: "no weights: an equal split, left to the translation",
			src: vs + lines(
				"  - route:",
				"    - {destination: {host: reviews, subset: v1}}",
				"    - {destination: {host: reviews, subset: v2}}",
			),
		},
		{
			name: "weight 150 is reported once, as out of range",
			src: vs + lines(
				"  - route:",
				"    - {destination: {host: reviews, subset: v1}, weight: 150}", // 8
				"    - {destination: {host: reviews, subset: v2}, weight: 10}",
			),
			want: []string{"mesh.yaml:8: VirtualService default/reviews: spec.http[0].route[0].weight: weight 150 is out of range 0..100"},
		},
		{
			name: "TCP weights",
			src: strings.Replace(vs, "  http:", "  tcp:", 1) + lines(
				"  - route:", // 7
				"    - {destination: {host: db, port: {number: 5432}}, weight: 60}",
				"    - {destination: {host: db2, port: {number: 5432}}, weight: 60}",
			),
			want: []string{"mesh.yaml:7: VirtualService default/reviews: spec.tcp[0].route: the weights of the 2 destinations add up to 120; they must add up to 100"},
		},
		{
			name: "regexes that compile",
			src: vs + lines(
				"  - match:",
				"    - uri: {regex: '^/api/v[0-9]+/.*'}",
				"      headers: {x-user: {regex: '(alice|bob)'}}",
				"    route: [{destination: {host: reviews}}]",
			),
		},
		{
			name: "regexes that do not compile",
			src: vs + lines(
				"  - match:",
				"    - uri: {regex: '^/api/(v1'}",                                // 8
				"      headers: {x-user: {regex: '[a-'}}",                        // 9
				"      queryParams: {q: {regex: 'a**'}}",                         // 10
				"    rewrite: {uriRegexRewrite: {match: '(?P<x', rewrite: '/'}}", // 11
				"    route: [{destination: {host: reviews}}]",
			),
			want: []string{
				"mesh.yaml:8: VirtualService default/reviews: spec.http[0].match[0].uri.regex: regex \"^/api/(v1\" does not compile: missing closing ): `^/api/(v1`",
				"mesh.yaml:9: VirtualService default/reviews: spec.http[0].match[0].headers.x-user.regex: regex \"[a-\" does not compile: missing closing ]: `[a-`",
				"mesh.yaml:10: VirtualService default/reviews: spec.http[0].match[0].queryParams.q.regex: regex \"a**\" does not compile: invalid nested repetition operator: `**`",
				"mesh.yaml:11: VirtualService default/reviews: spec.http[0].rewrite.uriRegexRewrite.match: regex \"(?P<x\" does not compile: invalid named capture: `(?P<x`",
			},
		},
		{
			name: "regex too large",
			src: vs + lines(
				"  - match:",
				"    - uri: {regex: '(a{1000}){1000}'}", // 8
				"    route: [{destination: {host: reviews}}]",
			),
			want: []string{"mesh.yaml:8: VirtualService default/reviews: spec.http[0].match[0].uri.regex: regex \"(a{1000}){1000}\" does not compile: invalid repeat count: `{1000}`"},
		},
		{
			name: "regex program too large",
			src: vs + lines(
				"  - match:",
				"    - uri: {regex: '[a-z]{500}[0-9]{600}'}", // 8
				"    route: [{destination: {host: reviews}}]",
			),
			want: []string{"mesh.yaml:8: VirtualService default/reviews: spec.http[0].match[0].uri.regex: regex is too large: it compiles to 1102 instructions, more than the limit of 1000; simplify it"},
		},
		{
			name: "regex too long",
			src: vs + lines(
				"  - match:",
				"    - uri: {regex: '"+strings.Repeat("a", 1100)+"'}", // 8
				"    route: [{destination: {host: reviews}}]",
			),
			want: []string{"mesh.yaml:8: VirtualService default/reviews: spec.http[0].match[0].uri.regex: regex is 1100 bytes long, more than the limit of 1024"},
		},
		{
			name: "HTTPRoute regexes",
			src: httpRoute + lines(
				"  - matches:",
				"    - path: {type: RegularExpression, value: '/(a'}",                 // 8
				"      headers: [{type: RegularExpression, name: x, value: '[z-a]'}]", // 9
				"      queryParams: [{type: Exact, name: q, value: '(('}]",
				"    backendRefs: [{name: reviews, port: 9080}]",
			),
			want: []string{
				"mesh.yaml:8: HTTPRoute default/reviews: spec.rules[0].matches[0].path.value: regex \"/(a\" does not compile: missing closing ): `/(a`",
				"mesh.yaml:9: HTTPRoute default/reviews: spec.rules[0].matches[0].headers[0].value: regex \"[z-a]\" does not compile: invalid character class range: `z-a`",
			},
		},
		{
			name: "GRPCRoute regexes",
			src: grpcRoute + lines(
				"  - matches:",
				"    - method: {type: RegularExpression, service: 'echo\\.(v1', method: 'Get.*'}", // 8
				"    backendRefs: [{name: echo, port: 9090}]",
			),
			want: []string{"mesh.yaml:8: GRPCRoute default/echo: spec.rules[0].matches[0].method.service: regex \"echo\\\\.(v1\" does not compile: missing closing ): `echo\\.(v1`"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("mesh.yaml", []byte(tt.src))
			if diff := cmp.Diff(tt.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

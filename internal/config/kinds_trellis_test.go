package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

func TestRateLimitPolicy(t *testing.T) {
	src := lines(
		"apiVersion: trellis.dev/v1alpha1",
		"kind: RateLimitPolicy",
		"metadata: {name: checkout, namespace: shop}",
		"spec:",
		"  targetRefs: [{group: '', kind: Service, name: checkout}]",
		"  rules:",
		"  - scope: Local",
		"    limit: {requests: 100, per: 1s}",
		"  - scope: Global",
		"    limit: {requests: 1000, per: 1m}",
		"    clientSelectors:",
		"    - headers: [{name: x-user, type: Distinct}]",
		"    - sourcePrincipals: [cluster.local/ns/shop/sa/frontend]",
		"    matches: [{path: {value: /api}, method: POST, headers: [{name: x-b, value: y}]}]",
		"    shadow: true",
	)
	set := parseOne(t, src)
	if len(set.RateLimitPolicies) != 1 {
		t.Fatalf("got %d policies, want 1", len(set.RateLimitPolicies))
	}
	got := set.RateLimitPolicies[0]
	want := v1alpha1.RateLimitPolicySpec{
		TargetRefs: []v1alpha1.PolicyTargetRef{{Group: "", Kind: "Service", Name: "checkout"}},
		Rules: []v1alpha1.RateLimitRule{
			{Scope: v1alpha1.ScopeLocal, Limit: v1alpha1.RateLimitValue{Requests: 100, Per: metav1.Duration{Duration: time.Second}}},
			{
				Scope: v1alpha1.ScopeGlobal,
				Limit: v1alpha1.RateLimitValue{Requests: 1000, Per: metav1.Duration{Duration: time.Minute}},
				ClientSelectors: []v1alpha1.RateLimitClientSelector{
					{Headers: []v1alpha1.RateLimitHeaderSelector{{Name: "x-user", Type: v1alpha1.HeaderSelectorDistinct}}},
					{SourcePrincipals: []string{"cluster.local/ns/shop/sa/frontend"}},
				},
				Matches: []v1alpha1.RateLimitMatch{{
					Path:    &v1alpha1.RateLimitPathMatch{Type: v1alpha1.PathMatchPathPrefix, Value: "/api"},
					Method:  "POST",
					Headers: []v1alpha1.RateLimitHeaderMatch{{Name: "x-b", Value: "y"}},
				}},
				Shadow: true,
			},
		},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Position{File: "mesh.yaml", Line: 1}, got.Pos); diff != "" {
		t.Errorf("position (-want +got):\n%s", diff)
	}
}

func TestRateLimitPolicyErrors(t *testing.T) {
	head := lines("apiVersion: trellis.dev/v1alpha1", "kind: RateLimitPolicy", "metadata: {name: p, namespace: shop}", "spec:") // 1-4
	const svc = "  targetRefs: [{group: '', kind: Service, name: a}]\n"
	tests := []struct {
		name string
		body string // from line 5
		want []string
	}{
		{
			name: "empty spec",
			body: "  {}\n",
			want: []string{
				"mesh.yaml:4: RateLimitPolicy shop/p: spec.targetRefs: required: at least one target (a Service, an HTTPRoute or the Namespace)",
				"mesh.yaml:4: RateLimitPolicy shop/p: spec.rules: required: at least one rule",
			},
		},
		{
			name: "bad targets",
			body: lines(
				"  targetRefs:",
				"  - {group: x, kind: Service, name: a}",                           // 6
				"  - {group: '', kind: HTTPRoute, name: r}",                        // 7
				"  - {group: '', kind: Namespace, name: other}",                    // 8
				"  - {group: '', kind: Pod, name: a}",                              // 9
				"  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}", // 10
				"  rules: [{limit: {requests: 1, per: 1s}}]",
			),
			want: []string{
				`mesh.yaml:6: RateLimitPolicy shop/p: spec.targetRefs[0].group: group of a Service is "", not "x"`,
				`mesh.yaml:7: RateLimitPolicy shop/p: spec.targetRefs[1].group: group of a HTTPRoute is "gateway.networking.k8s.io", not ""`,
				`mesh.yaml:8: RateLimitPolicy shop/p: spec.targetRefs[2].name: a policy can only target its own namespace "shop", not "other"`,
				`mesh.yaml:9: RateLimitPolicy shop/p: spec.targetRefs[3].kind: unsupported kind "Pod": use Service, HTTPRoute or Namespace`,
			},
		},
		{
			name: "bad limits",
			body: svc + lines(
				"  rules:",
				"  - limit: {requests: 0, per: 1s}",                    // 7
				"  - limit: {requests: 1, per: 1500ms}",                // 8
				"  - limit: {requests: 1}",                             // 9
				"  - limit: {requests: 1, per: 48h}",                   // 10
				"  - {scope: Galactic, limit: {requests: 1, per: 1s}}", // 11
			),
			want: []string{
				"mesh.yaml:7: RateLimitPolicy shop/p: spec.rules[0].limit.requests: required: at least 1",
				"mesh.yaml:8: RateLimitPolicy shop/p: spec.rules[1].limit.per: 1.5s is not a whole number of seconds (such as 1s, 30s, 1m, 1h)",
				"mesh.yaml:9: RateLimitPolicy shop/p: spec.rules[2].limit.per: required: a period such as 1s, 1m or 1h",
				"mesh.yaml:10: RateLimitPolicy shop/p: spec.rules[3].limit.per: 48h0m0s is longer than 24h0m0s",
				`mesh.yaml:11: RateLimitPolicy shop/p: spec.rules[4].scope: unknown scope "Galactic": use Local or Global`,
			},
		},
		{
			name: "bad selectors and matches",
			body: svc + lines(
				"  rules:",
				"  - limit: {requests: 1, per: 1s}",
				"    clientSelectors:",
				"    - {}", // 9
				"    - headers: [{name: x-u, type: Distinct, value: a}]",      // 10
				"    - headers: [{name: X-U}, {name: 'bad name', type: Any}]", // 11
				"    matches:",
				"    - {}", // 13
				"    - {path: {type: Regex, value: api}, method: get}", // 14
			),
			want: []string{
				"mesh.yaml:9: RateLimitPolicy shop/p: spec.rules[0].clientSelectors[0]: empty selector: give headers or sourcePrincipals",
				"mesh.yaml:10: RateLimitPolicy shop/p: spec.rules[0].clientSelectors[1].headers[0].value: not allowed for type Distinct (every value has its own budget)",
				`mesh.yaml:11: RateLimitPolicy shop/p: spec.rules[0].clientSelectors[2].headers[0].name: header "X-U" is already selected at spec.rules[0].clientSelectors[1].headers[0]`,
				"mesh.yaml:11: RateLimitPolicy shop/p: spec.rules[0].clientSelectors[2].headers[0].value: required for type Exact",
				`mesh.yaml:11: RateLimitPolicy shop/p: spec.rules[0].clientSelectors[2].headers[1].name: "bad name" is not a valid HTTP header name`,
				`mesh.yaml:11: RateLimitPolicy shop/p: spec.rules[0].clientSelectors[2].headers[1].type: unknown type "Any": use Distinct or Exact`,
				"mesh.yaml:13: RateLimitPolicy shop/p: spec.rules[0].matches[0]: empty match: give path, method or headers (a rule without matches applies to every request)",
				`mesh.yaml:14: RateLimitPolicy shop/p: spec.rules[0].matches[1].path.type: unknown type "Regex": use Exact or PathPrefix`,
				`mesh.yaml:14: RateLimitPolicy shop/p: spec.rules[0].matches[1].path.value: "api" does not start with /`,
				`mesh.yaml:14: RateLimitPolicy shop/p: spec.rules[0].matches[1].method: "get" is not an HTTP method such as GET`,
			},
		},
		{
			name: "not a duration",
			body: svc + lines("  rules: [{limit: {requests: 1, per: soon}}]"),
			want: []string{`mesh.yaml:6: RateLimitPolicy shop/p: spec.rules[0].limit.per: invalid value string "soon": time: invalid duration "soon"`},
		},
		{
			name: "unknown field",
			body: svc + lines("  rules: [{limit: {requests: 1, per: 1s}, burst: 3}]"),
			want: []string{`mesh.yaml:6: RateLimitPolicy shop/p: spec.rules[0].burst: unknown field`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("mesh.yaml", []byte(head+tt.body))
			if diff := cmp.Diff(tt.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

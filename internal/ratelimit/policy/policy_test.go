package policy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/ratelimit/policy"
)

func limit(n uint32, per time.Duration) v1alpha1.RateLimitValue {
	return v1alpha1.RateLimitValue{Requests: n, Per: metav1.Duration{Duration: per}}
}

// testTable compiles one policy, shop/api, with the rules:
//
//	0 Global, per x-user (Distinct) and x-tier: gold, for principal frontend or admin
//	1 Global, POST under /cart, or anything with x-debug: 1
//	2 Local, exact path /login
func testTable(t *testing.T) *policy.Table {
	t.Helper()
	p := &v1alpha1.RateLimitPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: v1alpha1.RateLimitPolicySpec{
			TargetRefs: []v1alpha1.PolicyTargetRef{{Kind: "Service", Name: "api"}},
			Rules: []v1alpha1.RateLimitRule{
				{
					Scope: v1alpha1.ScopeGlobal, Limit: limit(10, time.Minute),
					ClientSelectors: []v1alpha1.RateLimitClientSelector{
						{Headers: []v1alpha1.RateLimitHeaderSelector{
							{Name: "x-user", Type: v1alpha1.HeaderSelectorDistinct},
							{Name: "X-Tier", Type: v1alpha1.HeaderSelectorExact, Value: "gold"},
						}},
						{SourcePrincipals: []string{"cluster.local/ns/shop/sa/frontend", "cluster.local/ns/shop/sa/admin"}},
					},
				},
				{
					Scope: v1alpha1.ScopeGlobal, Limit: limit(5, time.Second),
					Matches: []v1alpha1.RateLimitMatch{
						{Path: &v1alpha1.RateLimitPathMatch{Type: v1alpha1.PathMatchPathPrefix, Value: "/cart"}, Method: "POST"},
						{Headers: []v1alpha1.RateLimitHeaderMatch{{Name: "x-debug", Value: "1"}}},
					},
				},
				{
					Scope: v1alpha1.ScopeLocal, Limit: limit(1, time.Second),
					Matches: []v1alpha1.RateLimitMatch{{Path: &v1alpha1.RateLimitPathMatch{Type: v1alpha1.PathMatchExact, Value: "/login"}}},
				},
			},
		},
	}
	table, err := policy.Compile([]*v1alpha1.RateLimitPolicy{p})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return table
}

func TestAppendDescriptor(t *testing.T) {
	const frontend = "cluster.local/ns/shop/sa/frontend"
	gold := func(user string) http.Header { return http.Header{"X-User": {user}, "X-Tier": {"gold"}} }
	tests := []struct {
		name string
		rule string
		req  policy.Request
		want []policy.Entry // nil: the rule does not apply
	}{
		{
			name: "client selectors",
			rule: "shop/api/0",
			req:  policy.Request{Method: "GET", Path: "/", Header: gold("alice"), SourcePrincipal: frontend},
			want: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-user", "alice"}, {"header.x-tier", "gold"}, {"source.principal", frontend}},
		},
		{
			name: "missing distinct header",
			rule: "shop/api/0",
			req:  policy.Request{Header: http.Header{"X-Tier": {"gold"}}, SourcePrincipal: frontend},
		},
		{
			name: "exact header differs",
			rule: "shop/api/0",
			req:  policy.Request{Header: http.Header{"X-User": {"a"}, "X-Tier": {"silver"}}, SourcePrincipal: frontend},
		},
		{
			name: "principal not selected",
			rule: "shop/api/0",
			req:  policy.Request{Header: gold("alice"), SourcePrincipal: "cluster.local/ns/shop/sa/other"},
		},
		{
			name: "no principal",
			rule: "shop/api/0",
			req:  policy.Request{Header: gold("alice")},
		},
		{
			name: "path prefix and method",
			rule: "shop/api/1",
			req:  policy.Request{Method: "POST", Path: "/cart/items"},
			want: []policy.Entry{{"policy", "shop/api/1"}},
		},
		{
			name: "path prefix is by element",
			rule: "shop/api/1",
			req:  policy.Request{Method: "POST", Path: "/cartography"},
		},
		{
			name: "method differs",
			rule: "shop/api/1",
			req:  policy.Request{Method: "GET", Path: "/cart"},
		},
		{
			name: "second match",
			rule: "shop/api/1",
			req:  policy.Request{Method: "GET", Path: "/", Header: http.Header{"X-Debug": {"1"}}},
			want: []policy.Entry{{"policy", "shop/api/1"}},
		},
		{
			name: "exact path",
			rule: "shop/api/2",
			req:  policy.Request{Path: "/login"},
			want: []policy.Entry{{"policy", "shop/api/2"}},
		},
		{
			name: "exact path differs",
			rule: "shop/api/2",
			req:  policy.Request{Path: "/login/x"},
		},
	}
	table := testTable(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := table.Rule(tt.rule)
			got, ok := rule.AppendDescriptor(nil, &tt.req)
			if ok != (tt.want != nil) || ok != rule.Applies(&tt.req) {
				t.Fatalf("AppendDescriptor applies = %v, Applies = %v, want %v", ok, rule.Applies(&tt.req), tt.want != nil)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if ok && rule.Scope == v1alpha1.ScopeGlobal && table.Resolve(got) != rule {
				t.Errorf("Resolve(%v) is not the rule", got)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	const frontend = "cluster.local/ns/shop/sa/frontend"
	tests := []struct {
		name    string
		entries []policy.Entry
		want    string // the rule's ID; "" for none
	}{
		{name: "rule without selectors", entries: []policy.Entry{{"policy", "shop/api/1"}}, want: "shop/api/1"},
		{
			name:    "rule with selectors",
			entries: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-user", "bob"}, {"header.x-tier", "gold"}, {"source.principal", frontend}},
			want:    "shop/api/0",
		},
		{name: "no entries"},
		{name: "not a policy entry", entries: []policy.Entry{{"generic_key", "shop/api/1"}}},
		{name: "unknown rule", entries: []policy.Entry{{"policy", "shop/api/9"}}},
		{name: "local rule", entries: []policy.Entry{{"policy", "shop/api/2"}}},
		{name: "extra entry", entries: []policy.Entry{{"policy", "shop/api/1"}, {"header.x", "y"}}},
		{name: "missing entries", entries: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-user", "bob"}}},
		{
			name:    "entries out of order",
			entries: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-tier", "gold"}, {"header.x-user", "bob"}, {"source.principal", frontend}},
		},
		{
			name:    "exact value differs",
			entries: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-user", "bob"}, {"header.x-tier", "silver"}, {"source.principal", frontend}},
		},
		{
			name:    "empty distinct value",
			entries: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-user", ""}, {"header.x-tier", "gold"}, {"source.principal", frontend}},
		},
		{
			name:    "principal not selected",
			entries: []policy.Entry{{"policy", "shop/api/0"}, {"header.x-user", "bob"}, {"header.x-tier", "gold"}, {"source.principal", "x"}},
		},
	}
	table := testTable(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if r := table.Resolve(tt.entries); r != nil {
				got = r.ID
			}
			if got != tt.want {
				t.Errorf("Resolve = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestForTarget(t *testing.T) {
	mk := func(name string, refs ...v1alpha1.PolicyTargetRef) *v1alpha1.RateLimitPolicy {
		return &v1alpha1.RateLimitPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec:       v1alpha1.RateLimitPolicySpec{TargetRefs: refs, Rules: []v1alpha1.RateLimitRule{{Limit: limit(1, time.Second)}}},
		}
	}
	table, err := policy.Compile([]*v1alpha1.RateLimitPolicy{
		mk("svc", v1alpha1.PolicyTargetRef{Kind: "Service", Name: "api"}),
		mk("ns", v1alpha1.PolicyTargetRef{Kind: "Namespace", Name: "shop"}),
		mk("route", v1alpha1.PolicyTargetRef{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Name: "api"}),
	})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	ids := func(rules []*policy.Rule) []string {
		var out []string
		for _, r := range rules {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		name                    string
		namespace, kind, target string
		want                    []string
	}{
		{name: "service and namespace", namespace: "shop", kind: "Service", target: "api", want: []string{"shop/svc/0", "shop/ns/0"}},
		{name: "other service", namespace: "shop", kind: "Service", target: "web", want: []string{"shop/ns/0"}},
		{name: "route", namespace: "shop", kind: "HTTPRoute", target: "api", want: []string{"shop/route/0"}},
		{name: "other namespace", namespace: "prod", kind: "Service", target: "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(table.ForTarget(tt.namespace, tt.kind, tt.target))); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	p := &v1alpha1.RateLimitPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "shop"},
		Spec: v1alpha1.RateLimitPolicySpec{Rules: []v1alpha1.RateLimitRule{
			{Limit: limit(0, time.Second)},
			{Limit: limit(1, 1500*time.Millisecond)},
		}},
	}
	_, err := policy.Compile([]*v1alpha1.RateLimitPolicy{p, p})
	if err == nil {
		t.Fatal("Compile accepted invalid rules")
	}
	want := []string{
		"RateLimitPolicy shop/bad: rules[0]: limit.requests must be at least 1",
		"RateLimitPolicy shop/bad: rules[1]: limit.per 1.5s is not a whole number of seconds",
	}
	want = append(want, want...)
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

package model

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/registry"
)

func TestAuthzValues(t *testing.T) {
	tr := &ruleTranslator{ns: "default"}
	tests := []struct {
		name    string
		parse   func(string) (AuthzValue, error)
		in      string
		want    AuthzValue
		wantErr string
	}{
		{name: "exact", parse: stringValue, in: "GET", want: AuthzValue{Exact: "GET"}},
		{name: "prefix", parse: stringValue, in: "/api/*", want: AuthzValue{Prefix: "/api/"}},
		{name: "suffix", parse: stringValue, in: "*.css", want: AuthzValue{Suffix: ".css"}},
		{name: "presence", parse: stringValue, in: "*", want: AuthzValue{Present: true}},
		{name: "empty", parse: stringValue, in: "", wantErr: "empty value"},
		{name: "host ignores case", parse: hostValue, in: "Reviews:*", want: AuthzValue{Prefix: "Reviews:", IgnoreCase: true}},
		{name: "principal exact", parse: principalValue, in: "cluster.local/ns/a/sa/b", want: AuthzValue{Exact: "spiffe://cluster.local/ns/a/sa/b"}},
		{name: "principal prefix", parse: principalValue, in: "cluster.local/ns/a/*", want: AuthzValue{Prefix: "spiffe://cluster.local/ns/a/"}},
		{name: "principal suffix", parse: principalValue, in: "*/sa/b", want: AuthzValue{Suffix: "/sa/b"}},
		{name: "principal presence", parse: principalValue, in: "*", want: AuthzValue{Regex: ".+"}},
		{name: "namespace", parse: namespaceValue, in: "a.b", want: AuthzValue{Regex: `spiffe://[^/]+/ns/a\.b/sa/[^/]+`}},
		{name: "namespace prefix", parse: namespaceValue, in: "dev*", want: AuthzValue{Regex: `spiffe://[^/]+/ns/dev[^/]*/sa/[^/]+`}},
		{name: "service account", parse: tr.serviceAccountValue, in: "ops/batch", want: AuthzValue{Regex: `spiffe://[^/]+/ns/ops/sa/batch`}},
		{name: "service account in the policy's namespace", parse: tr.serviceAccountValue, in: "batch", want: AuthzValue{Regex: `spiffe://[^/]+/ns/default/sa/batch`}},
		{name: "service account wildcard", parse: tr.serviceAccountValue, in: "ops/*", wantErr: "without wildcards"},
		{name: "trust domain", parse: trustDomainValue, in: "example.org", want: AuthzValue{Prefix: "spiffe://example.org/"}},
		{name: "ip", parse: cidrValue, in: "10.1.2.3", want: AuthzValue{CIDR: "10.1.2.3/32"}},
		{name: "ipv6", parse: cidrValue, in: "2001:db8::1", want: AuthzValue{CIDR: "2001:db8::1/128"}},
		{name: "cidr", parse: cidrValue, in: "10.0.0.0/8", want: AuthzValue{CIDR: "10.0.0.0/8"}},
		{name: "cidr with host bits", parse: cidrValue, in: "10.0.0.1/8", wantErr: "did you mean 10.0.0.0/8"},
		{name: "not an ip", parse: cidrValue, in: "example.com", wantErr: "neither an IP address nor a CIDR block"},
		{name: "port", parse: portValue, in: "8080", want: AuthzValue{Port: 8080}},
		{name: "port out of range", parse: portValue, in: "70000", wantErr: "not a port"},
		{name: "path template", parse: pathValue, in: "/foo/{*}/bar/{**}", want: AuthzValue{Regex: `/foo/[^/]+/bar/.*`}},
		{name: "bad path template", parse: pathValue, in: "/{**}/foo/{*}", wantErr: "{**} must be the last operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestPathTemplates checks the templates against Istio's documented examples.
func TestPathTemplates(t *testing.T) {
	tests := []struct {
		name      string
		template  string
		match     []string
		noMatch   []string
		wantError bool
	}{
		{name: "one segment", template: "/foo/{*}", match: []string{"/foo/bar"}, noMatch: []string{"/foo/bar/baz", "/foo/", "/foo"}},
		{name: "trailing glob and slash", template: "/foo/{**}/", match: []string{"/foo/bar/", "/foo/bar/baz.txt", "/foo//"}, noMatch: []string{"/foo/bar"}},
		{name: "both", template: "/foo/{*}/bar/{**}", match: []string{"/foo/buzz/bar/", "/foo/buzz/bar/baz"}, noMatch: []string{"/foo/buzz/baz/x"}},
		{name: "regex characters are literal", template: "/a.b/{*}", match: []string{"/a.b/x"}, noMatch: []string{"/axb/x"}},
		{name: "star outside an operator", template: "/*/baz/{*}", wantError: true},
		{name: "double star outside an operator", template: "/**/baz/{*}", wantError: true},
		{name: "glob not last", template: "/{**}/foo/{*}", wantError: true},
		{name: "operator and text in a segment", template: "/foo/{*}.txt", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, err := PathTemplateRegex(tt.template)
			if tt.wantError {
				if err == nil {
					t.Fatalf("PathTemplateRegex(%q) = %q, want an error", tt.template, re)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			full := regexp.MustCompile("^(?:" + re + ")$")
			for _, p := range tt.match {
				if !full.MatchString(p) {
					t.Errorf("%s (%s) does not match %s", tt.template, re, p)
				}
			}
			for _, p := range tt.noMatch {
				if full.MatchString(p) {
					t.Errorf("%s (%s) matches %s", tt.template, re, p)
				}
			}
		})
	}
}

func m(attr Attr, not bool, vals ...AuthzValue) *AuthzMatch {
	return &AuthzMatch{Attr: attr, Not: not, Values: vals}
}

func TestRulesFor(t *testing.T) {
	port := func(n uint32) AuthzValue { return AuthzValue{Port: n} }
	get := AuthzValue{Exact: "GET"}
	alice := AuthzValue{Exact: "spiffe://cluster.local/ns/default/sa/alice"}
	rule := &AuthzRule{
		Index: 3,
		From:  [][]*AuthzMatch{{m(AttrPrincipal, false, alice)}},
		To: [][]*AuthzMatch{
			{m(AttrDestinationPort, false, port(9000)), m(AttrMethod, false, get)},
			{m(AttrDestinationPort, true, port(9000))},
		},
	}
	tests := []struct {
		name   string
		action AuthzAction
		rules  []*AuthzRule
		port   uint32
		http   bool
		want   []*AuthzRule
	}{
		{
			name: "HTTP port 9000: the first To clause, its port decided", action: AuthzAllow, rules: []*AuthzRule{rule}, port: 9000, http: true,
			want: []*AuthzRule{{Index: 3, From: rule.From, To: [][]*AuthzMatch{{m(AttrMethod, false, get)}}}},
		},
		{
			name: "HTTP port 8080: the notPorts clause holds, so any operation", action: AuthzAllow, rules: []*AuthzRule{rule}, port: 8080, http: true,
			want: []*AuthzRule{{Index: 3, From: rule.From}},
		},
		{
			name: "TCP ALLOW: a rule with an HTTP-only field never matches", action: AuthzAllow, rules: []*AuthzRule{rule}, port: 9000,
		},
		{
			name: "TCP DENY: HTTP-only fields are dropped, the rest decides", action: AuthzDeny, rules: []*AuthzRule{rule}, port: 9000,
			want: []*AuthzRule{{Index: 3, From: rule.From}},
		},
		{
			name: "TCP ALLOW with requestPrincipals in from", action: AuthzAllow, port: 9000,
			rules: []*AuthzRule{{From: [][]*AuthzMatch{{m(AttrRequestPrincipal, false, AuthzValue{Present: true})}}}},
		},
		{
			name: "TCP DENY with requestPrincipals in from: any source", action: AuthzDeny, port: 9000,
			rules: []*AuthzRule{{From: [][]*AuthzMatch{{m(AttrRequestPrincipal, false, AuthzValue{Present: true})}}}},
			want:  []*AuthzRule{{}},
		},
		{
			name: "a When on another port drops the rule whatever the action", action: AuthzDeny, port: 9000, http: true,
			rules: []*AuthzRule{{When: []*AuthzMatch{m(AttrDestinationPort, false, port(8080))}}},
		},
		{
			name: "TCP keeps connection attributes", action: AuthzAllow, port: 9000,
			rules: []*AuthzRule{{When: []*AuthzMatch{m(AttrSNI, false, AuthzValue{Prefix: "outbound_"})}}},
			want:  []*AuthzRule{{When: []*AuthzMatch{m(AttrSNI, false, AuthzValue{Prefix: "outbound_"})}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := &AuthzPolicy{Action: tt.action, Rules: tt.rules}
			got := pol.RulesFor(tt.port, tt.http)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuthzScopes(t *testing.T) {
	const meshYAML = `
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  service: web
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: trellis-system}
spec: {action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: root-selector, namespace: trellis-system}
spec: {selector: {matchLabels: {app: web}}, action: AUDIT, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-wide, namespace: shop}
spec: {rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: other}
spec: {rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-labels, namespace: shop}
spec: {selector: {matchLabels: {app: db}}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-service, namespace: shop}
spec: {targetRefs: [{kind: Service, name: front}], action: CUSTOM, provider: {name: opa}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: by-other-service, namespace: shop}
spec: {targetRefs: [{kind: Service, name: nothing}], rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway, namespace: shop}
spec: {targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}], rules: [{}]}
`
	cfg, err := config.Parse("mesh.yaml", []byte(meshYAML))
	if err != nil {
		t.Fatal(err)
	}
	inst := registry.Instance{NodeID: "web.shop", Metadata: bootstrap.Metadata{Workload: "web", Namespace: "shop",
		Labels: map[string]string{"app": "web"}, Service: "web", Authz: true,
		Ports: []bootstrap.Port{{Name: "http", Port: 8080, Protocol: "HTTP", Target: "127.0.0.1:18080", Inbound: "127.0.0.1:15001"}}}}
	mesh := Build(cfg, []registry.Instance{inst}, WithExtAuthz(ExtAuthzProvider{Name: "opa", Address: "127.0.0.1:9191"}))
	p := NewProxy(inst)
	var got []string
	for _, pol := range mesh.AuthzFor(p, p.Inbound[0]) {
		got = append(got, string(pol.Action)+" "+pol.Namespace+"/"+pol.Name)
	}
	want := []string{"CUSTOM shop/by-service", "DENY trellis-system/mesh-wide", "ALLOW shop/ns-wide", "AUDIT trellis-system/root-selector"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("policies of web.shop:8080 (-want +got):\n%s", diff)
	}
	var errs []string
	for _, e := range mesh.ConfigErrors {
		errs = append(errs, e.Error())
	}
	wantErrs := []string{`mesh.yaml:51: AuthorizationPolicy shop/gateway: spec.targetRefs[0].kind: only a Service (group "") can be targeted, not Gateway "gateway.networking.k8s.io"; the policy is ignored`}
	if diff := cmp.Diff(wantErrs, errs); diff != "" {
		t.Errorf("config errors (-want +got):\n%s", diff)
	}
	var warns []string
	for _, e := range mesh.Warnings {
		warns = append(warns, e.Error())
	}
	wantWarns := []string{
		`mesh.yaml:31: AuthorizationPolicy other/other-ns: metadata.namespace: the policy applies to no known workload (namespace other)`,
		`mesh.yaml:36: AuthorizationPolicy shop/other-labels: spec.selector: the policy applies to no known workload (selector map[app:db] in namespace shop)`,
		`mesh.yaml:46: AuthorizationPolicy shop/by-other-service: spec.targetRefs: the policy applies to no known workload (Services shop/nothing)`,
	}
	if diff := cmp.Diff(wantWarns, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

package xdsgen

import (
	"regexp"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"trellis.dev/trellis/internal/model"
)

// evalPrincipal evaluates the subset of RBAC principals the generator emits for
// request principals and claims against a JWT payload, as docs/xds.md specifies.
func evalPrincipal(t *testing.T, p *rbacv3.Principal, payload map[string]any) bool {
	t.Helper()
	switch id := p.Identifier.(type) {
	case *rbacv3.Principal_Any:
		return id.Any
	case *rbacv3.Principal_AndIds:
		for _, c := range id.AndIds.Ids {
			if !evalPrincipal(t, c, payload) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_OrIds:
		for _, c := range id.OrIds.Ids {
			if evalPrincipal(t, c, payload) {
				return true
			}
		}
		return false
	case *rbacv3.Principal_NotId:
		return !evalPrincipal(t, id.NotId, payload)
	case *rbacv3.Principal_Metadata:
		md := id.Metadata
		if md.Filter != JWTAuthnFilter || md.Path[0].GetKey() != JWTPayloadKey {
			t.Fatalf("metadata matcher on %s %v", md.Filter, md.Path)
		}
		var v any = payload
		for _, seg := range md.Path[1:] {
			obj, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = obj[seg.GetKey()]; !ok {
				return false
			}
		}
		return evalValue(t, md.Value, v)
	}
	t.Fatalf("unexpected principal %T", p.Identifier)
	return false
}

func evalValue(t *testing.T, m *matcherv3.ValueMatcher, v any) bool {
	switch p := m.MatchPattern.(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		return v != nil
	case *matcherv3.ValueMatcher_StringMatch:
		s, ok := v.(string)
		return ok && evalString(t, p.StringMatch, s)
	case *matcherv3.ValueMatcher_ListMatch:
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if evalValue(t, p.ListMatch.GetOneOf(), e) {
				return true
			}
		}
		return false
	}
	t.Fatalf("unexpected value matcher %T", m.MatchPattern)
	return false
}

func evalString(t *testing.T, m *matcherv3.StringMatcher, s string) bool {
	switch p := m.MatchPattern.(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, p.Suffix)
	case *matcherv3.StringMatcher_SafeRegex:
		return regexp.MustCompile("^(?:" + p.SafeRegex.Regex + ")$").MatchString(s)
	}
	t.Fatalf("unexpected string matcher %T", m.MatchPattern)
	return false
}

// TestRequestPrincipals checks that matching "<iss>/<sub>" through the two claims
// agrees with matching the joined string, for issuers and subjects with slashes.
func TestRequestPrincipals(t *testing.T) {
	issuers := []string{"https://issuer.example.com", "https://a.example.com/tenant/1", "iss", "a/b", ""}
	subjects := []string{"alice", "bob@example.com", "x/y", "", "tenant/1/alice"}
	patterns := []string{
		"https://issuer.example.com/alice", "https://a.example.com/tenant/1/x/y", "iss/", "a/b/x/y",
		"https://issuer.example.com/*", "https://a.example.com/*", "https://a.example.com/tenant/1/al*", "a/*", "a*", "iss/*",
		"*/alice", "*@example.com", "*/1/alice", "*b/x/y", "*", "noslash",
	}
	for _, pat := range patterns {
		av := istioValue(pat)
		p := requestPrincipal(av)
		for _, iss := range issuers {
			for _, sub := range subjects {
				payload := map[string]any{"iss": iss, "sub": sub}
				want := istioMatch(pat, iss+"/"+sub)
				if got := evalPrincipal(t, p, payload); got != want {
					t.Errorf("requestPrincipals %q, iss %q sub %q: matched %v, want %v", pat, iss, sub, got, want)
				}
			}
		}
	}
}

// TestClaims checks that a claim matches as a string or as a list element.
func TestClaims(t *testing.T) {
	tests := []struct {
		name    string
		path    []string
		value   string
		payload map[string]any
		want    bool
	}{
		{name: "string", path: []string{"aud"}, value: "api", payload: map[string]any{"aud": "api"}, want: true},
		{name: "list", path: []string{"aud"}, value: "api", payload: map[string]any{"aud": []any{"web", "api"}}, want: true},
		{name: "list without it", path: []string{"aud"}, value: "api", payload: map[string]any{"aud": []any{"web"}}},
		{name: "nested", path: []string{"a", "b"}, value: "x*", payload: map[string]any{"a": map[string]any{"b": "xyz"}}, want: true},
		{name: "missing", path: []string{"groups"}, value: "*", payload: map[string]any{}},
		{name: "present", path: []string{"groups"}, value: "*", payload: map[string]any{"groups": []any{}}, want: true},
		{name: "number is not a string", path: []string{"n"}, value: "1", payload: map[string]any{"n": 1.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := claimPrincipal(tt.path, istioValue(tt.value))
			if got := evalPrincipal(t, p, tt.payload); got != tt.want {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
}

// istioValue parses a value as model does.
func istioValue(v string) model.AuthzValue {
	switch {
	case v == "*":
		return model.AuthzValue{Present: true}
	case strings.HasPrefix(v, "*"):
		return model.AuthzValue{Suffix: v[1:]}
	case strings.HasSuffix(v, "*"):
		return model.AuthzValue{Prefix: v[:len(v)-1]}
	}
	return model.AuthzValue{Exact: v}
}

// istioMatch is Istio's matching of a value against a string.
func istioMatch(pat, s string) bool {
	switch {
	case pat == "*":
		return s != ""
	case strings.HasPrefix(pat, "*"):
		return strings.HasSuffix(s, pat[1:])
	case strings.HasSuffix(pat, "*"):
		return strings.HasPrefix(s, pat[:len(pat)-1])
	}
	return s == pat
}

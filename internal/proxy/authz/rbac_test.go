package authz

import (
	"errors"
	"net/http"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Builders of RBAC protos, to keep the tables readable.

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func permAny() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }

func permPath(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}

func permHeader(name string, m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}}}
}

func permNot(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func permOr(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func permAnd(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func prinAny() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func prinAuth(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func prinIP(addr string, bits uint32) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
		AddressPrefix: addr, PrefixLen: wrapperspb.UInt32(bits)}}}
}

func prinClaim(value *matcherv3.ValueMatcher, path ...string) *rbacv3.Principal {
	var segs []*matcherv3.MetadataMatcher_PathSegment
	for _, k := range append([]string{"payload"}, path...) {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: JWTFilter, Path: segs, Value: value}}}
}

func strValue(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}
}

func listValue(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: strValue(m)}}}}
}

func rules(action rbacv3.RBAC_Action, perm *rbacv3.Permission, prin *rbacv3.Principal) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{perm}, Principals: []*rbacv3.Principal{prin}}}}
}

func req(method, path string, header http.Header) *Request {
	if header == nil {
		header = http.Header{}
	}
	return &Request{HTTP: true, Method: method, Authority: "echo:8080", Scheme: "http", Path: path, PathQuery: path,
		Header: header, Remote: netip.MustParseAddr("10.1.2.3")}
}

func TestEngine(t *testing.T) {
	mtls := req("GET", "/", nil)
	mtls.Principal = "spiffe://cluster.local/ns/default/sa/client"
	jwtReq := func(payload map[string]any) *Request {
		r := req("GET", "/", nil)
		r.Metadata.JWT = map[string]any{"payload": payload}
		return r
	}
	tests := []struct {
		name  string
		rules *rbacv3.RBAC
		req   *Request
		want  bool // allowed
	}{
		{"allow any", rules(rbacv3.RBAC_ALLOW, permAny(), prinAny()), req("GET", "/", nil), true},
		{"allow without policies denies", &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW}, req("GET", "/", nil), false},
		{"deny without policies allows", &rbacv3.RBAC{Action: rbacv3.RBAC_DENY}, req("GET", "/", nil), true},
		{"deny exact path", rules(rbacv3.RBAC_DENY, permPath(exact("/admin")), prinAny()), req("GET", "/admin", nil), false},
		{"deny exact path, other path", rules(rbacv3.RBAC_DENY, permPath(exact("/admin")), prinAny()), req("GET", "/admin/", nil), true},
		{"deny prefix", rules(rbacv3.RBAC_DENY, permPath(prefix("/admin/")), prinAny()), req("GET", "/admin/x", nil), false},
		{"path ignore case", rules(rbacv3.RBAC_DENY, permPath(&matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/admin"}, IgnoreCase: true}), prinAny()), req("GET", "/ADMIN", nil), false},
		{"path regex is whole", rules(rbacv3.RBAC_DENY, permPath(&matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a/[^/]+"}}}), prinAny()), req("GET", "/a/b/c", nil), true},
		{"method exact", rules(rbacv3.RBAC_ALLOW, permHeader(":method", exact("GET")), prinAny()), req("get", "/", nil), false},
		{"authority ignores case", rules(rbacv3.RBAC_ALLOW, permHeader(":authority", &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "ECHO:8080"}, IgnoreCase: true}), prinAny()), req("GET", "/", nil), true},
		{"header name case-insensitive", rules(rbacv3.RBAC_DENY, permHeader("X-User", exact("eve")), prinAny()),
			req("GET", "/", http.Header{"X-User": {"eve"}}), false},
		{"second copy of a header cannot hide a value", rules(rbacv3.RBAC_DENY, permHeader("x-user", exact("eve")), prinAny()),
			req("GET", "/", http.Header{"X-User": {"alice", "eve"}}), false},
		{"joined copies match", rules(rbacv3.RBAC_DENY, permHeader("x-user", exact("alice,eve")), prinAny()),
			req("GET", "/", http.Header{"X-User": {"alice", "eve"}}), false},
		{"absent header does not match", rules(rbacv3.RBAC_ALLOW, permHeader("x-user", prefix("")), prinAny()), req("GET", "/", nil), false},
		{"present match", rules(rbacv3.RBAC_DENY, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: "x-debug", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, prinAny()),
			req("GET", "/", http.Header{"X-Debug": {""}}), false},
		{"not rule", rules(rbacv3.RBAC_ALLOW, permNot(permHeader(":method", exact("POST"))), prinAny()), req("GET", "/", nil), true},
		{"or rules", rules(rbacv3.RBAC_ALLOW, permOr(permPath(exact("/a")), permPath(exact("/b"))), prinAny()), req("GET", "/b", nil), true},
		{"and rules", rules(rbacv3.RBAC_ALLOW, permAnd(permPath(exact("/a")), permHeader(":method", exact("POST"))), prinAny()), req("GET", "/a", nil), false},
		{"principal over mTLS", rules(rbacv3.RBAC_ALLOW, permAny(), prinAuth(exact("spiffe://cluster.local/ns/default/sa/client"))), mtls, true},
		{"principal never in plaintext", rules(rbacv3.RBAC_ALLOW, permAny(), prinAuth(prefix(""))), req("GET", "/", nil), false},
		{"any authenticated", rules(rbacv3.RBAC_ALLOW, permAny(), &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
			Authenticated: &rbacv3.Principal_Authenticated{}}}), mtls, true},
		{"cidr", rules(rbacv3.RBAC_ALLOW, permAny(), prinIP("10.1.0.0", 16)), req("GET", "/", nil), true},
		{"cidr outside", rules(rbacv3.RBAC_ALLOW, permAny(), prinIP("10.2.0.0", 16)), req("GET", "/", nil), false},
		{"claim string", rules(rbacv3.RBAC_ALLOW, permAny(), prinClaim(strValue(exact("alice")), "sub")),
			jwtReq(map[string]any{"sub": "alice"}), true},
		{"claim nested", rules(rbacv3.RBAC_ALLOW, permAny(), prinClaim(strValue(exact("x")), "a", "b")),
			jwtReq(map[string]any{"a": map[string]any{"b": "x"}}), true},
		{"claim list one of", rules(rbacv3.RBAC_ALLOW, permAny(), prinClaim(listValue(exact("admins")), "groups")),
			jwtReq(map[string]any{"groups": []any{"dev", "admins"}}), true},
		{"claim of another type", rules(rbacv3.RBAC_ALLOW, permAny(), prinClaim(strValue(exact("1")), "n")),
			jwtReq(map[string]any{"n": 1.0}), false},
		{"claim without token", rules(rbacv3.RBAC_ALLOW, permAny(), prinClaim(&matcherv3.ValueMatcher{
			MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}, "iss")), req("GET", "/", nil), false},
		{"claim present", rules(rbacv3.RBAC_ALLOW, permAny(), prinClaim(&matcherv3.ValueMatcher{
			MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}}, "iss")), jwtReq(map[string]any{"iss": "x"}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.rules, HTTPMode)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Allowed(tt.req); got != tt.want {
				t.Errorf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules *rbacv3.RBAC
		mode  Mode
		field string
	}{
		{"destination_port not in the contract", rules(rbacv3.RBAC_ALLOW, &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 80}}, prinAny()),
			HTTPMode, `policies["p"].permissions[0].rule`},
		{"invert_match not in the contract", rules(rbacv3.RBAC_DENY, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("a")}}}}, prinAny()),
			HTTPMode, `policies["p"].permissions[0].header.invert_match`},
		{"bad regex", rules(rbacv3.RBAC_DENY, permPath(&matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}), prinAny()),
			HTTPMode, `policies["p"].permissions[0].url_path.path.safe_regex.regex`},
		{"header in a network filter", rules(rbacv3.RBAC_DENY, permHeader(":method", exact("GET")), prinAny()),
			NetworkMode, `policies["p"].permissions[0].header`},
		{"bad cidr", rules(rbacv3.RBAC_ALLOW, permAny(), prinIP("10.0.0.300", 8)),
			HTTPMode, `policies["p"].principals[0].direct_remote_ip.address_prefix`},
		{"metadata of another filter", rules(rbacv3.RBAC_ALLOW, permAny(), &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{
			Metadata: &matcherv3.MetadataMatcher{Filter: "x", Path: []*matcherv3.MetadataMatcher_PathSegment{{
				Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "k"}}}, Value: strValue(exact("v"))}}}),
			HTTPMode, `policies["p"].principals[0].metadata.filter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.rules, tt.mode)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a FieldError", err)
			}
			if diff := cmp.Diff(tt.field, fe.Field); diff != "" {
				t.Errorf("field (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShadowAndLog(t *testing.T) {
	shadow := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"trellis-ext-authz-b": {Permissions: []*rbacv3.Permission{permPath(prefix("/custom/"))}, Principals: []*rbacv3.Principal{prinAny()}},
		"trellis-ext-authz-a": {Permissions: []*rbacv3.Permission{permPath(prefix("/custom/x"))}, Principals: []*rbacv3.Principal{prinAny()}},
	}}
	f, err := compileFilter(nil, shadow, "trellis_ext_authz_", HTTPMode)
	if err != nil {
		t.Fatal(err)
	}
	r := req("GET", "/custom/x", nil)
	if !f.Decide(r) {
		t.Fatal("shadow rules refused a request")
	}
	want := map[string]any{"trellis_ext_authz_shadow_effective_policy_id": "trellis-ext-authz-a", "trellis_ext_authz_shadow_engine_result": "allowed"}
	if diff := cmp.Diff(want, r.Metadata.RBAC); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	r = req("GET", "/other", nil)
	f.Decide(r)
	if r.Metadata.RBAC != nil {
		t.Errorf("metadata set without a match: %v", r.Metadata.RBAC)
	}

	log, err := compileFilter(rules(rbacv3.RBAC_LOG, permPath(exact("/audited")), prinAny()), nil, "", HTTPMode)
	if err != nil {
		t.Fatal(err)
	}
	for path, audit := range map[string]bool{"/audited": true, "/other": false} {
		r := req("GET", path, nil)
		if !log.Decide(r) || r.Metadata.Audit != audit {
			t.Errorf("%s: audit %v, want %v (and allowed)", path, r.Metadata.Audit, audit)
		}
	}
}

func BenchmarkEngine(b *testing.B) {
	pols := map[string]*rbacv3.Policy{}
	for i, p := range []string{"/admin", "/debug", "/internal", "/metrics", "/private"} {
		pols[p] = &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{permAnd(permPath(prefix(p+"/")), permHeader(":method", exact("POST")))},
			Principals:  []*rbacv3.Principal{prinAuth(exact("spiffe://cluster.local/ns/default/sa/x" + string(rune('a'+i))))},
		}
	}
	e, err := Compile(&rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: pols}, HTTPMode)
	if err != nil {
		b.Fatal(err)
	}
	r := req("POST", "/api/v1/users", http.Header{"X-User": {"alice"}})
	r.Principal = "spiffe://cluster.local/ns/default/sa/client"
	b.ReportAllocs()
	for b.Loop() {
		if !e.Allowed(r) {
			b.Fatal("denied")
		}
	}
}

package xdsgen

import (
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/model"
)

// Authorization rules as Envoy RBAC policies (docs/xds.md, "Authorization and
// request authentication"): one Policy per rule, whose permissions are its To
// clauses and whose principals its From clauses, the When matches added to every
// clause of the side they belong to.

// JWTAuthnFilter is the jwt_authn filter's name, the namespace of the token payload
// in dynamic metadata; JWTPayloadKey the key under it.
const (
	JWTAuthnFilter = "envoy.filters.http.jwt_authn"
	JWTPayloadKey  = "payload"
)

// rbacPolicies translates the rules of policies, as enforced on one port, into
// RBAC policies keyed ns[<ns>]-policy[<name>]-rule[<i>] (with prefix).
func rbacPolicies(pols []*model.AuthzPolicy, port uint32, http bool, prefix string) map[string]*rbacv3.Policy {
	out := map[string]*rbacv3.Policy{}
	for _, pol := range pols {
		for _, r := range pol.RulesFor(port, http) {
			name := fmt.Sprintf("%sns[%s]-policy[%s]-rule[%d]", prefix, pol.Namespace, pol.Name, r.Index)
			out[name] = rbacPolicy(r)
		}
	}
	return out
}

// permissionSide reports whether a match is about the operation (Permission)
// rather than the source (Principal).
func permissionSide(a model.Attr) bool {
	switch a {
	case model.AttrHost, model.AttrMethod, model.AttrPath, model.AttrSNI:
		return true
	}
	return false
}

func rbacPolicy(r *model.AuthzRule) *rbacv3.Policy {
	var permWhen, prinWhen []*model.AuthzMatch
	for _, m := range r.When {
		if permissionSide(m.Attr) {
			permWhen = append(permWhen, m)
		} else {
			prinWhen = append(prinWhen, m)
		}
	}
	p := &rbacv3.Policy{}
	to := r.To
	if len(to) == 0 {
		to = [][]*model.AuthzMatch{nil}
	}
	for _, clause := range to {
		var perms []*rbacv3.Permission
		for _, m := range append(append([]*model.AuthzMatch{}, clause...), permWhen...) {
			perms = append(perms, permission(m))
		}
		p.Permissions = append(p.Permissions, andPermissions(perms))
	}
	from := r.From
	if len(from) == 0 {
		from = [][]*model.AuthzMatch{nil}
	}
	for _, clause := range from {
		var ids []*rbacv3.Principal
		for _, m := range append(append([]*model.AuthzMatch{}, clause...), prinWhen...) {
			ids = append(ids, principal(m))
		}
		p.Principals = append(p.Principals, andPrincipals(ids))
	}
	return p
}

func andPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	switch len(ps) {
	case 0:
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	case 1:
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func andPrincipals(ids []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ids) {
	case 0:
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	case 1:
		return ids[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func orPrincipals(ids []*rbacv3.Principal) *rbacv3.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

// permission is one operation match: any of its values, or with Not none.
func permission(m *model.AuthzMatch) *rbacv3.Permission {
	var ps []*rbacv3.Permission
	for _, v := range m.Values {
		var p *rbacv3.Permission
		switch m.Attr {
		case model.AttrHost:
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(":authority", v)}}
		case model.AttrMethod:
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: headerMatcher(":method", v)}}
		case model.AttrPath:
			if v.Present {
				p = &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
			} else {
				p = &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
					Rule: &matcherv3.PathMatcher_Path{Path: authzMatcher(v)}}}}
			}
		case model.AttrSNI:
			p = &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: authzMatcher(v)}}
		}
		ps = append(ps, p)
	}
	p := orPermissions(ps)
	if m.Not {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
	}
	return p
}

// principal is one source match: any of its values, or with Not none.
func principal(m *model.AuthzMatch) *rbacv3.Principal {
	var ids []*rbacv3.Principal
	for _, v := range m.Values {
		switch m.Attr {
		case model.AttrPrincipal:
			ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{
				Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: authzMatcher(v)}}})
		case model.AttrSourceIP:
			ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v.CIDR)}})
		case model.AttrRemoteIP:
			ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr(v.CIDR)}})
		case model.AttrHeader:
			ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: headerMatcher(m.Key[0], v)}})
		case model.AttrClaim:
			ids = append(ids, claimPrincipal(m.Key, v))
		case model.AttrRequestPrincipal:
			ids = append(ids, requestPrincipal(v))
		}
	}
	id := orPrincipals(ids)
	if m.Not {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: id}}
	}
	return id
}

func authzMatcher(v model.AuthzValue) *matcherv3.StringMatcher {
	sm := &matcherv3.StringMatcher{IgnoreCase: v.IgnoreCase}
	switch {
	case v.Present:
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}
	case v.Regex != "":
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v.Regex}}
	case v.Prefix != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: v.Prefix}
	case v.Suffix != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: v.Suffix}
	default:
		sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: v.Exact}
	}
	return sm
}

func headerMatcher(name string, v model.AuthzValue) *routev3.HeaderMatcher {
	h := &routev3.HeaderMatcher{Name: name}
	if v.Present {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	} else {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: authzMatcher(v)}
	}
	return h
}

// cidr turns a block written by model (always valid) into a CidrRange.
func cidr(s string) *corev3.CidrRange {
	p := netip.MustParsePrefix(s)
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

// payloadMatcher matches a value of the verified token's payload.
func payloadMatcher(path []string, value *matcherv3.ValueMatcher) *rbacv3.Principal {
	segs := []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: JWTPayloadKey}}}
	for _, k := range path {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: k}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: JWTAuthnFilter, Path: segs, Value: value}}}
}

func stringValueMatcher(v model.AuthzValue) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: authzMatcher(v)}}
}

// claimPrincipal matches a claim that is a string equal to the value, or a list with
// an element equal to it.
func claimPrincipal(path []string, v model.AuthzValue) *rbacv3.Principal {
	if v.Present {
		return payloadMatcher(path, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}})
	}
	str := stringValueMatcher(v)
	list := &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: stringValueMatcher(v)}}}}
	return orPrincipals([]*rbacv3.Principal{payloadMatcher(path, str), payloadMatcher(path, list)})
}

// requestPrincipal matches "<iss>/<sub>" of the verified token against a value using
// the two claims: for every way the value can be split at a "/" into issuer and
// subject, both parts must match (issuers are URLs and hold slashes themselves).
func requestPrincipal(v model.AuthzValue) *rbacv3.Principal {
	claim := func(name string, v model.AuthzValue) *rbacv3.Principal {
		return payloadMatcher([]string{name}, stringValueMatcher(v))
	}
	both := func(iss, sub model.AuthzValue) *rbacv3.Principal {
		return andPrincipals([]*rbacv3.Principal{claim("iss", iss), claim("sub", sub)})
	}
	var ids []*rbacv3.Principal
	switch {
	case v.Present:
		return payloadMatcher([]string{"iss"}, &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}})
	case v.Prefix != "":
		// iss starts with the whole prefix, or iss is the part before a "/" of the
		// prefix and sub starts with the rest.
		ids = append(ids, claim("iss", model.AuthzValue{Prefix: v.Prefix}))
		for i := range splitPoints(v.Prefix) {
			rest := model.AuthzValue{Prefix: v.Prefix[i+1:]}
			if rest.Prefix == "" {
				rest = model.AuthzValue{Regex: ".*"}
			}
			ids = append(ids, both(model.AuthzValue{Exact: v.Prefix[:i]}, rest))
		}
	case v.Suffix != "":
		ids = append(ids, claim("sub", model.AuthzValue{Suffix: v.Suffix}))
		for i := range splitPoints(v.Suffix) {
			head := model.AuthzValue{Suffix: v.Suffix[:i]}
			if head.Suffix == "" {
				head = model.AuthzValue{Regex: ".*"}
			}
			ids = append(ids, both(head, model.AuthzValue{Exact: v.Suffix[i+1:]}))
		}
	default:
		for i := range splitPoints(v.Exact) {
			ids = append(ids, both(model.AuthzValue{Exact: v.Exact[:i]}, model.AuthzValue{Exact: v.Exact[i+1:]}))
		}
		if len(ids) == 0 {
			// No "/": no "<iss>/<sub>" can equal it.
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}
		}
	}
	return orPrincipals(ids)
}

// splitPoints yields the indexes of "/" in s.
func splitPoints(s string) func(func(int) bool) {
	return func(yield func(int) bool) {
		for i := 0; i < len(s); i++ {
			if s[i] == '/' && !yield(i) {
				return
			}
		}
	}
}

package authz

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"trellis.dev/trellis/internal/proxy/internal/strmatch"
)

// Action is what an engine does with a request its policies match.
type Action uint8

const (
	// Allow lets through the requests some policy matches and refuses the others.
	Allow Action = iota
	// Deny refuses the requests some policy matches.
	Deny
	// Log lets everything through and marks the requests a policy matches audited.
	Log
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return "LOG"
}

// Engine is a compiled config.rbac.v3.RBAC: an action and named policies, each
// matching when any of its permissions and any of its principals match. It is
// immutable; evaluating it allocates nothing (except to join the values of a
// repeated header).
type Engine struct {
	Action   Action
	policies []policy // sorted by name: the first match is Envoy's effective policy
}

type policy struct {
	name  string
	perms []node
	prins []node
}

// node is one compiled permission or principal.
type node interface {
	match(r *Request) bool
}

// Mode says which matchers a configuration may use.
type Mode uint8

const (
	// HTTPMode allows every matcher of the contract.
	HTTPMode Mode = iota
	// NetworkMode allows only the connection-level ones (any, the combinators,
	// authenticated, direct_remote_ip, remote_ip, requested_server_name): a network
	// filter sees no request.
	NetworkMode
)

// Compile compiles rules. Any field outside docs/xds.md is an error naming it.
func Compile(rules *rbacv3.RBAC, mode Mode) (*Engine, error) {
	if err := only(rules, "action", "policies"); err != nil {
		return nil, err
	}
	e := &Engine{}
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.Action = Allow
	case rbacv3.RBAC_DENY:
		e.Action = Deny
	case rbacv3.RBAC_LOG:
		e.Action = Log
	default:
		return nil, fieldErr("action", "%s is not supported", rules.GetAction())
	}
	c := compiler{mode: mode}
	for name, p := range rules.GetPolicies() {
		at := fmt.Sprintf("policies[%q]", name)
		if err := only(p, "permissions", "principals"); err != nil {
			return nil, under(at, err)
		}
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			return nil, fieldErr(at, "needs at least one permission and one principal")
		}
		pol := policy{name: name}
		for i, perm := range p.GetPermissions() {
			n, err := c.permission(perm, 0)
			if err != nil {
				return nil, under(fmt.Sprintf("%s.permissions[%d]", at, i), err)
			}
			pol.perms = append(pol.perms, n)
		}
		for i, prin := range p.GetPrincipals() {
			n, err := c.principal(prin, 0)
			if err != nil {
				return nil, under(fmt.Sprintf("%s.principals[%d]", at, i), err)
			}
			pol.prins = append(pol.prins, n)
		}
		e.policies = append(e.policies, pol)
	}
	slices.SortFunc(e.policies, func(a, b policy) int { return strings.Compare(a.name, b.name) })
	return e, nil
}

// Match returns the name of the first policy (in name order) that matches r.
func (e *Engine) Match(r *Request) (name string, ok bool) {
	for i := range e.policies {
		p := &e.policies[i]
		if anyMatch(p.perms, r) && anyMatch(p.prins, r) {
			return p.name, true
		}
	}
	return "", false
}

// Allowed applies the engine's action: Allow lets r through iff a policy matches,
// Deny iff none does, Log always (setting the audit mark when one matches).
func (e *Engine) Allowed(r *Request) bool {
	_, matched := e.Match(r)
	switch e.Action {
	case Allow:
		return matched
	case Deny:
		return !matched
	}
	if matched {
		r.Metadata.Audit = true
	}
	return true
}

// Policies returns the names of the policies, sorted.
func (e *Engine) Policies() []string {
	out := make([]string, len(e.policies))
	for i, p := range e.policies {
		out[i] = p.name
	}
	return out
}

func anyMatch(ns []node, r *Request) bool {
	for _, n := range ns {
		if n.match(r) {
			return true
		}
	}
	return false
}

// maxDepth bounds the nesting of and/or/not, so a hostile configuration cannot
// exhaust the stack.
const maxDepth = 32

type compiler struct{ mode Mode }

func (c compiler) permission(p *rbacv3.Permission, depth int) (node, error) {
	if depth > maxDepth {
		return nil, fieldErr("", "nested more than %d deep", maxDepth)
	}
	if p == nil {
		return nil, fieldErr("", "is required")
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fieldErr("any", "must be true")
		}
		return anyNode{}, nil
	case *rbacv3.Permission_AndRules:
		ns, err := c.permissions(r.AndRules.GetRules(), "and_rules.rules", depth)
		return andNode(ns), err
	case *rbacv3.Permission_OrRules:
		ns, err := c.permissions(r.OrRules.GetRules(), "or_rules.rules", depth)
		return orNode(ns), err
	case *rbacv3.Permission_NotRule:
		n, err := c.permission(r.NotRule, depth+1)
		if err != nil {
			return nil, under("not_rule", err)
		}
		return notNode{n}, nil
	case *rbacv3.Permission_Header:
		if c.mode == NetworkMode {
			return nil, fieldErr("header", "a network filter sees no request headers")
		}
		n, err := compileHeader(r.Header)
		return n, under("header", err)
	case *rbacv3.Permission_UrlPath:
		if c.mode == NetworkMode {
			return nil, fieldErr("url_path", "a network filter sees no request path")
		}
		if err := only(r.UrlPath, "path"); err != nil {
			return nil, under("url_path", err)
		}
		sm, err := compileString(r.UrlPath.GetPath())
		if err != nil {
			return nil, under("url_path.path", err)
		}
		return pathNode{sm}, nil
	case *rbacv3.Permission_RequestedServerName:
		sm, err := compileString(r.RequestedServerName)
		if err != nil {
			return nil, under("requested_server_name", err)
		}
		return sniNode{sm}, nil
	}
	return nil, fieldErr("rule", "%T is not supported by the Trellis sidecar", p.GetRule())
}

func (c compiler) permissions(ps []*rbacv3.Permission, at string, depth int) ([]node, error) {
	if len(ps) == 0 {
		return nil, fieldErr(at, "must not be empty")
	}
	out := make([]node, 0, len(ps))
	for i, p := range ps {
		n, err := c.permission(p, depth+1)
		if err != nil {
			return nil, under(fmt.Sprintf("%s[%d]", at, i), err)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c compiler) principal(p *rbacv3.Principal, depth int) (node, error) {
	if depth > maxDepth {
		return nil, fieldErr("", "nested more than %d deep", maxDepth)
	}
	if p == nil {
		return nil, fieldErr("", "is required")
	}
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return nil, fieldErr("any", "must be true")
		}
		return anyNode{}, nil
	case *rbacv3.Principal_AndIds:
		ns, err := c.principals(id.AndIds.GetIds(), "and_ids.ids", depth)
		return andNode(ns), err
	case *rbacv3.Principal_OrIds:
		ns, err := c.principals(id.OrIds.GetIds(), "or_ids.ids", depth)
		return orNode(ns), err
	case *rbacv3.Principal_NotId:
		n, err := c.principal(id.NotId, depth+1)
		if err != nil {
			return nil, under("not_id", err)
		}
		return notNode{n}, nil
	case *rbacv3.Principal_Authenticated_:
		if err := only(id.Authenticated, "principal_name"); err != nil {
			return nil, under("authenticated", err)
		}
		if id.Authenticated.GetPrincipalName() == nil {
			return authNode{any: true}, nil
		}
		sm, err := compileString(id.Authenticated.GetPrincipalName())
		if err != nil {
			return nil, under("authenticated.principal_name", err)
		}
		return authNode{sm: sm}, nil
	case *rbacv3.Principal_DirectRemoteIp:
		n, err := compileCIDR(id.DirectRemoteIp)
		return n, under("direct_remote_ip", err)
	case *rbacv3.Principal_RemoteIp:
		n, err := compileCIDR(id.RemoteIp)
		return n, under("remote_ip", err)
	case *rbacv3.Principal_Header:
		if c.mode == NetworkMode {
			return nil, fieldErr("header", "a network filter sees no request headers")
		}
		n, err := compileHeader(id.Header)
		return n, under("header", err)
	case *rbacv3.Principal_Metadata:
		if c.mode == NetworkMode {
			return nil, fieldErr("metadata", "a network filter sees no request metadata")
		}
		n, err := CompileMetadata(id.Metadata, JWTFilter)
		if err != nil {
			return nil, under("metadata", err)
		}
		return n, nil
	}
	return nil, fieldErr("identifier", "%T is not supported by the Trellis sidecar", p.GetIdentifier())
}

func (c compiler) principals(ps []*rbacv3.Principal, at string, depth int) ([]node, error) {
	if len(ps) == 0 {
		return nil, fieldErr(at, "must not be empty")
	}
	out := make([]node, 0, len(ps))
	for i, p := range ps {
		n, err := c.principal(p, depth+1)
		if err != nil {
			return nil, under(fmt.Sprintf("%s[%d]", at, i), err)
		}
		out = append(out, n)
	}
	return out, nil
}

type anyNode struct{}

func (anyNode) match(*Request) bool { return true }

type andNode []node

func (a andNode) match(r *Request) bool {
	for _, n := range a {
		if !n.match(r) {
			return false
		}
	}
	return true
}

type orNode []node

func (o orNode) match(r *Request) bool { return anyMatch(o, r) }

type notNode struct{ n node }

func (n notNode) match(r *Request) bool { return !n.n.match(r) }

// headerNode is a HeaderMatcher: a header that occurs several times matches when
// one of its values matches, or all of them joined with ",".
type headerNode struct {
	lname, canonical string
	sm               strmatch.Matcher
	present          bool // present_match was set
	presentValue     bool
}

func compileHeader(h *routev3.HeaderMatcher) (node, error) {
	if err := only(h, "name", "string_match", "present_match"); err != nil {
		return nil, err
	}
	if h.GetName() == "" {
		return nil, fieldErr("name", "is required")
	}
	n := &headerNode{lname: strings.ToLower(h.GetName()), canonical: canonicalHeader(h.GetName())}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := compileString(s.StringMatch)
		if err != nil {
			return nil, under("string_match", err)
		}
		n.sm = sm
	case *routev3.HeaderMatcher_PresentMatch:
		n.present, n.presentValue = true, s.PresentMatch
	default:
		return nil, fieldErr("header_match_specifier", "one of string_match or present_match is required")
	}
	return n, nil
}

func (h *headerNode) match(r *Request) bool {
	one, all, ok := r.header(h.lname, h.canonical)
	if h.present {
		return ok == h.presentValue
	}
	if !ok {
		return false
	}
	if all == nil {
		return h.sm.Match(one)
	}
	for _, v := range all {
		if h.sm.Match(v) {
			return true
		}
	}
	return h.sm.Match(strings.Join(all, ","))
}

type pathNode struct{ sm strmatch.Matcher }

func (p pathNode) match(r *Request) bool { return r.HTTP && p.sm.Match(r.Path) }

type sniNode struct{ sm strmatch.Matcher }

func (s sniNode) match(r *Request) bool { return s.sm.Match(r.SNI) }

// authNode matches the URI SAN of the peer's verified certificate; never in
// plaintext.
type authNode struct {
	sm  strmatch.Matcher
	any bool
}

func (a authNode) match(r *Request) bool {
	if r.Principal == "" {
		return false
	}
	return a.any || a.sm.Match(r.Principal)
}

type cidrNode struct{ prefix netip.Prefix }

func compileCIDR(c *corev3.CidrRange) (node, error) {
	if err := only(c, "address_prefix", "prefix_len"); err != nil {
		return nil, err
	}
	addr, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return nil, fieldErr("address_prefix", "%q is not an IP address", c.GetAddressPrefix())
	}
	bits := 0 // Envoy: an absent prefix_len is 0
	if pl := c.GetPrefixLen(); pl != nil {
		bits = int(pl.GetValue())
	}
	if bits > addr.BitLen() {
		return nil, fieldErr("prefix_len", "%d is longer than the address", bits)
	}
	return cidrNode{netip.PrefixFrom(addr.Unmap(), bits).Masked()}, nil
}

func (c cidrNode) match(r *Request) bool {
	return r.Remote.IsValid() && c.prefix.Contains(r.Remote.Unmap())
}

// MetadataMatcher is a compiled envoy.type.matcher.v3.MetadataMatcher over a
// request's dynamic metadata.
type MetadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
}

// CompileMetadata compiles a MetadataMatcher reading the metadata of one of filters.
func CompileMetadata(m *matcherv3.MetadataMatcher, filters ...string) (*MetadataMatcher, error) {
	if err := only(m, "filter", "path", "value"); err != nil {
		return nil, err
	}
	if !slices.Contains(filters, m.GetFilter()) {
		return nil, fieldErr("filter", "%q is not supported (want one of %s)", m.GetFilter(), strings.Join(filters, ", "))
	}
	n := &MetadataMatcher{filter: m.GetFilter()}
	for i, seg := range m.GetPath() {
		if err := only(seg, "key"); err != nil {
			return nil, under(fmt.Sprintf("path[%d]", i), err)
		}
		n.path = append(n.path, seg.GetKey())
	}
	if len(n.path) == 0 {
		return nil, fieldErr("path", "must not be empty")
	}
	vm, err := compileValue(m.GetValue(), 0)
	if err != nil {
		return nil, under("value", err)
	}
	n.value = vm
	return n, nil
}

// Match reports whether the request's metadata matches.
func (m *MetadataMatcher) Match(r *Request) bool { return m.match(r) }

func (m *MetadataMatcher) match(r *Request) bool {
	var v any = r.Metadata.Of(m.filter)
	for _, k := range m.path {
		obj, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = obj[k]; !ok {
			return false
		}
	}
	return m.value.match(v)
}

// valueMatcher is a ValueMatcher: string_match, present_match, or list_match.one_of.
type valueMatcher struct {
	sm      *strmatch.Matcher
	present bool
	oneOf   *valueMatcher
}

func compileValue(v *matcherv3.ValueMatcher, depth int) (valueMatcher, error) {
	if v == nil {
		return valueMatcher{}, fieldErr("", "is required")
	}
	if depth > 1 {
		return valueMatcher{}, fieldErr("", "lists of lists are not supported")
	}
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := compileString(p.StringMatch)
		if err != nil {
			return valueMatcher{}, under("string_match", err)
		}
		return valueMatcher{sm: &sm}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		if !p.PresentMatch {
			return valueMatcher{}, fieldErr("present_match", "must be true")
		}
		return valueMatcher{present: true}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		if err := only(p.ListMatch, "one_of"); err != nil {
			return valueMatcher{}, under("list_match", err)
		}
		inner, err := compileValue(p.ListMatch.GetOneOf(), depth+1)
		if err != nil {
			return valueMatcher{}, under("list_match.one_of", err)
		}
		return valueMatcher{oneOf: &inner}, nil
	}
	return valueMatcher{}, fieldErr("match_pattern", "%T is not supported (want string_match, present_match or list_match)", v.GetMatchPattern())
}

func (m *valueMatcher) match(v any) bool {
	switch {
	case m.present:
		return v != nil
	case m.sm != nil:
		s, ok := v.(string)
		return ok && m.sm.Match(s)
	case m.oneOf != nil:
		list, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range list {
			if m.oneOf.match(e) {
				return true
			}
		}
	}
	return false
}

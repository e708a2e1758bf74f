package model

import (
	"cmp"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
)

// Authorization (docs/authorization.md): AuthorizationPolicies are translated once
// into AuthzPolicy values whose rules are lists of attribute matches with their
// Istio values already parsed (principals as SPIFFE IDs, namespaces as regular
// expressions on them, path templates as regular expressions, CIDRs, ports). What
// depends on the port a policy is enforced on — its number and whether it carries
// HTTP — is decided by AuthzPolicy.RulesFor; xdsgen turns the result into Envoy RBAC.

// AuthzAction is what a policy does with the requests its rules match.
type AuthzAction string

// The actions, in Istio's order of evaluation (AUDIT only marks requests).
const (
	AuthzCustom AuthzAction = "CUSTOM"
	AuthzDeny   AuthzAction = "DENY"
	AuthzAllow  AuthzAction = "ALLOW"
	AuthzAudit  AuthzAction = "AUDIT"
)

// ScopeService: the workloads that back the Services a policy's targetRefs name.
const ScopeService PeerAuthScope = "Service"

// Attr is the request or connection attribute a match looks at.
type Attr string

// The attributes. Those of the request (Attr.HTTPOnly) exist only on HTTP ports.
const (
	// AttrPrincipal is the peer's SPIFFE ID from its mutual TLS certificate
	// (principals, namespaces, serviceAccounts, trustDomains, source.principal,
	// source.namespace).
	AttrPrincipal Attr = "source.principal"
	// AttrSourceIP is the downstream peer's address (ipBlocks, source.ip).
	AttrSourceIP Attr = "source.ip"
	// AttrRemoteIP is the original client's address (remoteIpBlocks, remote.ip).
	AttrRemoteIP Attr = "remote.ip"
	// AttrDestinationPort is the Workload port (ports, destination.port); decided
	// by RulesFor, never sent to the sidecar.
	AttrDestinationPort Attr = "destination.port"
	// AttrSNI is the TLS server name the client sent (connection.sni).
	AttrSNI Attr = "connection.sni"
	// AttrRequestPrincipal is "<iss>/<sub>" of the verified JWT (requestPrincipals,
	// request.auth.principal).
	AttrRequestPrincipal Attr = "request.auth.principal"
	// AttrClaim is a claim of the verified JWT, Key its path (request.auth.claims,
	// request.auth.audiences = aud, request.auth.presenter = azp).
	AttrClaim Attr = "request.auth.claims"
	// AttrHeader is a request header, Key its lower-case name (request.headers).
	AttrHeader Attr = "request.headers"
	// AttrHost, AttrMethod and AttrPath are the request's authority, method and
	// normalized path (hosts, methods, paths).
	AttrHost   Attr = "request.host"
	AttrMethod Attr = "request.method"
	AttrPath   Attr = "request.path"
)

// HTTPOnly reports whether the attribute exists only for HTTP requests.
func (a Attr) HTTPOnly() bool {
	switch a {
	case AttrRequestPrincipal, AttrClaim, AttrHeader, AttrHost, AttrMethod, AttrPath:
		return true
	}
	return false
}

// AuthzPolicy is one AuthorizationPolicy in force.
type AuthzPolicy struct {
	// Source names the document: "AuthorizationPolicy default/deny-admin".
	Source    string        `json:"source"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Scope     PeerAuthScope `json:"scope"`
	// Selector are the labels of the selected workloads (ScopeWorkload).
	Selector map[string]string `json:"selector,omitempty"`
	// Services are the namespace/name of the Services of targetRefs (ScopeService).
	Services []string    `json:"services,omitempty"`
	Action   AuthzAction `json:"action"`
	// Provider is the external authorizer of a CUSTOM policy.
	Provider string `json:"provider,omitempty"`
	// Rules are the policy's rules in order; an ALLOW policy without rules matches
	// nothing (it denies every request), a DENY one denies nothing.
	Rules []*AuthzRule `json:"rules"`

	selector labels.Selector
	obj      config.ObjectRef
	scopeAt  string // the field that sets the scope, for warnings
}

// AuthzRule is one rule: it matches when any From clause, any To clause and every
// When match hold (an empty From or To holds for every request).
type AuthzRule struct {
	// Index is the rule's position in spec.rules.
	Index int `json:"index"`
	// From and To are the rule's from[] and to[] entries, each a list of matches
	// that must all hold.
	From [][]*AuthzMatch `json:"from,omitempty"`
	To   [][]*AuthzMatch `json:"to,omitempty"`
	When []*AuthzMatch   `json:"when,omitempty"`
}

// AuthzMatch holds when the attribute matches any of Values (or, with Not, none).
type AuthzMatch struct {
	Attr Attr `json:"attr"`
	// Key is the header name or the claim's path.
	Key    []string     `json:"key,omitempty"`
	Not    bool         `json:"not,omitempty"`
	Values []AuthzValue `json:"values"`
	// Field is where the document sets it (spec.rules[0].to[1].operation.paths).
	Field string `json:"field"`
}

// AuthzValue is one value of a match: exactly one field is set.
type AuthzValue struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Suffix string `json:"suffix,omitempty"`
	// Regex is an RE2 expression that must match the whole value.
	Regex string `json:"regex,omitempty"`
	// Present: the attribute has any (non-empty) value.
	Present bool `json:"present,omitempty"`
	// CIDR is an address block, "10.0.0.0/8" (single addresses as /32 or /128).
	CIDR string `json:"cidr,omitempty"`
	// Port is a port number.
	Port uint32 `json:"port,omitempty"`
	// IgnoreCase compares case-insensitively (hosts).
	IgnoreCase bool `json:"ignoreCase,omitempty"`
}

// AuthzFor returns the authorization policies that apply to a workload port of the
// proxy, sorted by action (CUSTOM, DENY, ALLOW, AUDIT) then namespace/name.
func (m *Mesh) AuthzFor(p *Proxy, port InboundPort) []*AuthzPolicy {
	var out []*AuthzPolicy
	for _, pol := range m.AuthzPolicies {
		if m.applies(pol.Scope, pol.Namespace, pol.selector, pol.Services, p, port) {
			out = append(out, pol)
		}
	}
	slices.SortStableFunc(out, func(a, b *AuthzPolicy) int {
		return cmp.Compare(actionOrder(a.Action), actionOrder(b.Action))
	})
	return out
}

func actionOrder(a AuthzAction) int {
	return slices.Index([]AuthzAction{AuthzCustom, AuthzDeny, AuthzAllow, AuthzAudit}, a)
}

// applies reports whether a policy of the given scope reaches the proxy's port:
// mesh-wide (root namespace, no selector), namespace-wide, by selector (in the
// root namespace: in every namespace), or through a Service the port backs.
func (m *Mesh) applies(scope PeerAuthScope, ns string, sel labels.Selector, services []string, p *Proxy, port InboundPort) bool {
	switch scope {
	case ScopeMesh:
		return true
	case ScopeNamespace:
		return ns == p.Namespace
	case ScopeWorkload:
		return (ns == p.Namespace || ns == m.RootNamespace) && sel.Matches(labels.Set(p.Labels))
	case ScopeService:
		for _, key := range services {
			if m.backs(key, p, port) {
				return true
			}
		}
	}
	return false
}

// backs reports whether the service namespace/name reaches the proxy on port: one
// of its ports has the proxy's inbound address for port as an endpoint.
func (m *Mesh) backs(key string, p *Proxy, port InboundPort) bool {
	for _, s := range m.Services {
		if s.Namespace+"/"+s.Name != key {
			continue
		}
		for _, sp := range s.Ports {
			for _, ep := range sp.Endpoints {
				if ep.NodeID == p.ID && ep.Address == port.Inbound {
					return true
				}
			}
		}
	}
	return false
}

// RulesFor returns the rules of the policy as enforced on one workload port:
//
//   - destination ports are decided here: a To clause or a rule whose port
//     condition fails on this port is left out; one that holds is dropped from the
//     rule (it is true);
//   - on a TCP port (http false), matches on HTTP-only attributes cannot be
//     evaluated: an ALLOW or AUDIT rule with any is left out (it never matches), and
//     in a DENY or CUSTOM rule they are dropped (the rest decides; it matches more).
//
// The policy itself is not changed.
func (pol *AuthzPolicy) RulesFor(port uint32, http bool) []*AuthzRule {
	lenient := pol.Action == AuthzDeny || pol.Action == AuthzCustom
	var out []*AuthzRule
	for _, r := range pol.Rules {
		if nr, ok := r.forPort(port, http, lenient); ok {
			out = append(out, nr)
		}
	}
	return out
}

func (r *AuthzRule) forPort(port uint32, http, lenient bool) (*AuthzRule, bool) {
	// keep filters a clause; ok false means the clause can never hold.
	keep := func(ms []*AuthzMatch) ([]*AuthzMatch, bool) {
		var out []*AuthzMatch
		for _, m := range ms {
			switch {
			case m.Attr == AttrDestinationPort:
				if !m.holdsForPort(port) {
					return nil, false
				}
			case !http && m.Attr.HTTPOnly():
				if !lenient {
					return nil, false
				}
			default:
				out = append(out, m)
			}
		}
		return out, true
	}
	nr := &AuthzRule{Index: r.Index}
	var ok bool
	if nr.When, ok = keep(r.When); !ok {
		return nil, false
	}
	for _, c := range r.From {
		kept, ok := keep(c)
		if !ok {
			if !lenient {
				return nil, false
			}
			continue
		}
		nr.From = append(nr.From, kept)
	}
	if len(r.From) > 0 && len(nr.From) == 0 {
		return nil, false
	}
	for _, c := range r.To {
		if kept, ok := keep(c); ok {
			nr.To = append(nr.To, kept)
		} else if !lenient && hasHTTPOnly(c) && !http {
			return nil, false
		}
	}
	if len(r.To) > 0 && len(nr.To) == 0 {
		return nil, false
	}
	// A clause left empty holds for every request: the list holds as a whole.
	if slices.ContainsFunc(nr.From, func(c []*AuthzMatch) bool { return len(c) == 0 }) {
		nr.From = nil
	}
	if slices.ContainsFunc(nr.To, func(c []*AuthzMatch) bool { return len(c) == 0 }) {
		nr.To = nil
	}
	return nr, true
}

func hasHTTPOnly(ms []*AuthzMatch) bool {
	return slices.ContainsFunc(ms, func(m *AuthzMatch) bool { return m.Attr.HTTPOnly() })
}

func (m *AuthzMatch) holdsForPort(port uint32) bool {
	in := slices.ContainsFunc(m.Values, func(v AuthzValue) bool { return v.Port == port })
	return in != m.Not
}

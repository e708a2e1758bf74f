package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// KindRateLimitPolicy is the kind of RateLimitPolicy documents.
const KindRateLimitPolicy = "RateLimitPolicy"

// RateLimitPolicy limits the request rate of a Service, an HTTPRoute or every service of
// a namespace, attached to them with targetRefs (Gateway API policy attachment). Each
// rule is a separate limit; a request is refused (429) as soon as one rule that applies
// to it is over its limit. docs/ratelimit.md is the user's page about it.
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RateLimitPolicySpec `json:"spec"`
}

// RateLimitPolicySpec is what a RateLimitPolicy limits and how.
type RateLimitPolicySpec struct {
	// TargetRefs are what the policy applies to, in the policy's namespace: a Service
	// (group "", kind Service), an HTTPRoute (group gateway.networking.k8s.io, kind
	// HTTPRoute) or the namespace itself (group "", kind Namespace, name = the
	// policy's namespace), which means every service in it. At least one.
	TargetRefs []PolicyTargetRef `json:"targetRefs"`
	// Rules are the limits, each counted separately. At least one.
	Rules []RateLimitRule `json:"rules"`
}

// PolicyTargetRef names an object a policy is attached to, in the policy's namespace.
type PolicyTargetRef struct {
	// Group is the object's API group: "" for Service and Namespace,
	// gateway.networking.k8s.io for HTTPRoute.
	Group string `json:"group"`
	// Kind is Service, HTTPRoute or Namespace.
	Kind string `json:"kind"`
	// Name is the object's name.
	Name string `json:"name"`
}

// RateLimitScope says where a rule's requests are counted.
type RateLimitScope string

// The scopes of a rule.
const (
	// ScopeLocal: each server-side proxy of the target counts on its own (a token
	// bucket per proxy), so N replicas let through up to N times the limit.
	ScopeLocal RateLimitScope = "Local"
	// ScopeGlobal: one budget shared by every replica, counted by the rate-limit
	// service (`trellis ratelimit`).
	ScopeGlobal RateLimitScope = "Global"
)

// RateLimitRule is one limit and the requests it counts.
type RateLimitRule struct {
	// Scope is Local or Global. Default Local.
	Scope RateLimitScope `json:"scope,omitempty"`
	// Limit is how many requests are let through per period.
	Limit RateLimitValue `json:"limit"`
	// ClientSelectors narrow the rule to some clients and split its budget per client.
	// Every selector must hold for the rule to apply (they are ANDed). Without
	// selectors all the target's clients share one budget.
	ClientSelectors []RateLimitClientSelector `json:"clientSelectors,omitempty"`
	// Matches narrow the rule to some requests: it applies when any match holds (they
	// are ORed). Without matches it applies to every request.
	Matches []RateLimitMatch `json:"matches,omitempty"`
	// Shadow counts requests against the limit, in metrics, but never refuses one: a
	// way to try a limit on real traffic.
	Shadow bool `json:"shadow,omitempty"`
}

// RateLimitValue is a number of requests per period.
type RateLimitValue struct {
	// Requests is the number of requests let through per period; at least 1.
	Requests uint32 `json:"requests"`
	// Per is the period, a whole number of seconds written as a duration: 1s, 30s,
	// 1m, 1h. Windows are fixed and aligned to multiples of the period since the Unix
	// epoch, so every replica agrees on when a window starts.
	Per metav1.Duration `json:"per"`
}

// RateLimitClientSelector selects clients by request headers and by identity.
type RateLimitClientSelector struct {
	// Headers select by request header; every header listed must match.
	Headers []RateLimitHeaderSelector `json:"headers,omitempty"`
	// SourcePrincipals select by the client's workload identity (its mTLS
	// certificate), written as Istio writes principals:
	// "cluster.local/ns/shop/sa/frontend". "*" selects any authenticated client. Each
	// principal has its own budget; a request without an identity does not match.
	SourcePrincipals []string `json:"sourcePrincipals,omitempty"`
}

// HeaderSelectorType is how a header selects clients.
type HeaderSelectorType string

// The types of a header selector.
const (
	// HeaderSelectorDistinct gives every distinct value of the header its own budget;
	// a request without the header does not match.
	HeaderSelectorDistinct HeaderSelectorType = "Distinct"
	// HeaderSelectorExact matches requests whose header equals Value; they share one
	// budget.
	HeaderSelectorExact HeaderSelectorType = "Exact"
)

// RateLimitHeaderSelector selects clients by one request header.
type RateLimitHeaderSelector struct {
	// Name of the header, case-insensitive.
	Name string `json:"name"`
	// Type is Distinct or Exact. Default Exact.
	Type HeaderSelectorType `json:"type,omitempty"`
	// Value is the value to match, for type Exact (required then, and not allowed with
	// Distinct).
	Value string `json:"value,omitempty"`
}

// RateLimitMatch narrows a rule to the requests it describes: every field set must
// hold.
type RateLimitMatch struct {
	// Path matches the request's path (without the query).
	Path *RateLimitPathMatch `json:"path,omitempty"`
	// Method matches the request's method exactly, such as GET.
	Method string `json:"method,omitempty"`
	// Headers match request headers; every header listed must match.
	Headers []RateLimitHeaderMatch `json:"headers,omitempty"`
}

// PathMatchType is how a path is matched.
type PathMatchType string

// The types of a path match, spelt as in the Gateway API.
const (
	// PathMatchExact matches the path exactly.
	PathMatchExact PathMatchType = "Exact"
	// PathMatchPathPrefix matches the path and everything under it, element by
	// element: /api matches /api and /api/x, not /apix.
	PathMatchPathPrefix PathMatchType = "PathPrefix"
)

// RateLimitPathMatch matches a request's path.
type RateLimitPathMatch struct {
	// Type is Exact or PathPrefix. Default PathPrefix.
	Type PathMatchType `json:"type,omitempty"`
	// Value is the path; it starts with "/".
	Value string `json:"value"`
}

// RateLimitHeaderMatch matches one request header exactly.
type RateLimitHeaderMatch struct {
	// Name of the header, case-insensitive.
	Name string `json:"name"`
	// Value the header must have.
	Value string `json:"value"`
}

// Package policy turns RateLimitPolicies into rules: which requests a rule counts,
// the descriptor a Global rule sends to the rate-limit service for a request, and,
// on the service's side, the rule and limit a descriptor stands for.
//
// # Descriptors
//
// docs/ratelimit.md is the contract; in short, a Global rule and a request it applies
// to become one RLS descriptor, in the domain DefaultDomain ("trellis"):
//
//	{policy: <namespace>/<policy name>/<rule index>}
//	{header.<lowercased name>: <value>}    one per header selector, in the order written
//	{source.principal: <principal>}        when the rule selects sourcePrincipals
//
// The first entry names the rule; the others are the client's attributes the rule
// splits or narrows its budget by. Rule.AppendDescriptor builds it (the client side:
// a proxy) and Table.Resolve maps it back to its rule, checking that the entries are
// the ones the rule asks for (the server side); both sides compile the same policies.
// A descriptor that names no rule, or whose entries do not fit its rule, is unknown:
// the service answers OK without a limit, as Envoy's reference service does.
//
// Local rules use the same matching (Rule.Applies) and the same entries as a bucket
// key within one proxy.
//
// # Concurrency
//
// A Table and its Rules are immutable once Compile returns them and safe to share
// between goroutines; replace a Table to change the policies.
package policy

package model

import (
	"strconv"
	"time"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/names"
)

// Rate limiting (issue 8, docs/ratelimit.md): RateLimitPolicies become RateLimitRules,
// each knowing the services it is attached to; xdsgen puts them on the inbound
// listeners of the workloads behind those services (docs/xds.md, "Rate limiting").

// DefaultRateLimitTimeout bounds a sidecar's call to the rate-limit service when
// WithRateLimitService sets none.
const DefaultRateLimitTimeout = 100 * time.Millisecond

// RateLimitService is where the sidecars send the checks of Global rules.
type RateLimitService struct {
	// Address is the service's gRPC address (host:port), reached without TLS.
	Address string `json:"address"`
	// Timeout bounds one check; default DefaultRateLimitTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
	// FailureModeDeny refuses requests (429) when the service cannot be asked; false
	// lets them through (fail open, the default).
	FailureModeDeny bool `json:"failureModeDeny,omitempty"`
}

// WithRateLimitService sets the rate-limit service of Global rules. Without it, Global
// rules are reported and not enforced.
func WithRateLimitService(s RateLimitService) Option {
	return func(o *options) {
		if s.Address != "" {
			if s.Timeout <= 0 {
				s.Timeout = DefaultRateLimitTimeout
			}
			o.rateLimitService = &s
		}
	}
}

// RateLimitRule is one rule of a RateLimitPolicy, with what it is attached to.
type RateLimitRule struct {
	// ID is "<namespace>/<policy>/<index>", the descriptor value that names the rule
	// (policy.Rule.ID).
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	Policy    string `json:"policy"`
	Index     int    `json:"index"`
	// Rule is the rule as written, defaulted (Scope is set).
	Rule v1alpha1.RateLimitRule `json:"rule"`
	// Services are the FQDNs of the services the rule is attached to (a Service
	// target, or the parents of an HTTPRoute target).
	Services []string `json:"services,omitempty"`
	// WholeNamespace is set by a Namespace target: every workload of Namespace.
	WholeNamespace bool `json:"wholeNamespace,omitempty"`
	// Source is the policy's file:line, when known.
	Source string `json:"source,omitempty"`
}

// Global reports whether the rule is counted by the rate-limit service.
func (r *RateLimitRule) Global() bool { return r.Rule.Scope == v1alpha1.ScopeGlobal }

// addRateLimits compiles the RateLimitPolicies, after every service and route is
// known.
func (b *builder) addRateLimits(cfg *config.Set) {
	b.mesh.RateLimitService = b.opts.rateLimitService
	for _, rp := range cfg.RateLimitPolicies {
		obj := objectRef(v1alpha1.KindRateLimitPolicy, &rp.ObjectMeta, rp.Pos)
		var services []string
		whole := false
		for i, t := range rp.Spec.TargetRefs {
			field := "spec.targetRefs[" + strconv.Itoa(i) + "]"
			switch t.Kind {
			case "Namespace":
				whole = true
			case "Service":
				fqdn := names.ServiceFQDN(t.Name, rp.Namespace)
				if b.mesh.Service(fqdn) == nil {
					b.warnf(obj, field+".name", "no Service %s/%s: the rules apply to nothing until it exists", rp.Namespace, t.Name)
				}
				services = append(services, fqdn)
			case "HTTPRoute":
				found := false
				for _, hr := range cfg.HTTPRoutes {
					if hr.Namespace != rp.Namespace || hr.Name != t.Name {
						continue
					}
					found = true
					for _, ref := range hr.Spec.ParentRefs {
						if !isCoreService(ref.Group, ref.Kind) {
							continue
						}
						ns := rp.Namespace
						if ref.Namespace != nil && *ref.Namespace != "" {
							ns = string(*ref.Namespace)
						}
						services = append(services, names.ServiceFQDN(string(ref.Name), ns))
					}
				}
				if !found {
					b.warnf(obj, field+".name", "no HTTPRoute %s/%s: the rules apply to nothing until it exists", rp.Namespace, t.Name)
				}
			}
		}
		for i, r := range rp.Spec.Rules {
			rule := &RateLimitRule{
				ID:        rp.Namespace + "/" + rp.Name + "/" + strconv.Itoa(i),
				Namespace: rp.Namespace, Policy: rp.Name, Index: i,
				Rule: r, Services: services, WholeNamespace: whole, Source: rp.Pos.String(),
			}
			if rule.Rule.Scope == "" {
				rule.Rule.Scope = v1alpha1.ScopeLocal
			}
			if rule.Global() && b.mesh.RateLimitService == nil {
				b.warnf(obj, "spec.rules["+strconv.Itoa(i)+"].scope", "Global, but the control plane has no rate-limit service: the rule is not enforced")
				continue
			}
			b.mesh.RateLimits = append(b.mesh.RateLimits, rule)
		}
	}
}

// RateLimitsFor are the rules that apply to the requests proxy receives on its inbound
// port, in policy and rule order: those attached to a service whose endpoint the port
// is, and those attached to the proxy's namespace.
func (m *Mesh) RateLimitsFor(proxy *Proxy, port InboundPort) []*RateLimitRule {
	var out []*RateLimitRule
	for _, r := range m.RateLimits {
		if r.Namespace == proxy.Namespace && r.WholeNamespace || m.servesAny(proxy, port, r.Services) {
			out = append(out, r)
		}
	}
	return out
}

// servesAny reports whether the proxy's port is an endpoint of one of the services.
func (m *Mesh) servesAny(proxy *Proxy, port InboundPort, fqdns []string) bool {
	for _, fqdn := range fqdns {
		svc := m.Service(fqdn)
		if svc == nil {
			continue
		}
		for _, p := range svc.Ports {
			for _, ep := range p.Endpoints {
				if ep.NodeID == proxy.ID && ep.Address == port.Inbound {
					return true
				}
			}
		}
	}
	return false
}

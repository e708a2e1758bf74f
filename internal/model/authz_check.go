package model

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/registry"
)

// knownWorkload is a workload declared in config or registered, as the checks of
// security policies see it.
type knownWorkload struct {
	proxy *Proxy
	// services are the namespace/name of the services it backs.
	services []string
}

// knownWorkloads lists the Workloads of cfg and the registered instances (a
// registered instance of a declared workload replaces it).
func (b *builder) knownWorkloads(cfg *config.Set, instances []registry.Instance) []knownWorkload {
	var out []knownWorkload
	seen := map[string]bool{}
	b.indexNamespaces()
	defer func() { b.inNamespace = nil }()
	add := func(p *Proxy, declared string) {
		if seen[p.ID] {
			return
		}
		seen[p.ID] = true
		kw := knownWorkload{proxy: p}
		for _, s := range b.servicesIn(p.Namespace) {
			switch s.Origin {
			case OriginWorkload:
				if s.Name == declared {
					kw.services = append(kw.services, key(s.Namespace, s.Name))
				}
			case OriginService:
				if sel, ok := b.selectors[key(s.Namespace, s.Name)]; ok && sel.selector.Matches(labels.Set(p.Labels)) {
					kw.services = append(kw.services, key(s.Namespace, s.Name))
				}
			}
		}
		out = append(out, kw)
	}
	for _, inst := range instances {
		add(NewProxy(inst), inst.Metadata.Service)
	}
	for _, w := range cfg.Workloads {
		ns := namespaceOr(w.Namespace)
		p := &Proxy{ID: w.Name + "." + ns, Workload: w.Name, Namespace: ns, Labels: w.Labels, ServiceAccount: w.Spec.ServiceAccount}
		for _, wp := range w.Spec.Ports {
			p.Inbound = append(p.Inbound, InboundPort{Name: wp.Name, Port: uint32(wp.Port), Protocol: protocolOf(string(wp.Protocol))})
		}
		add(p, w.Spec.Service)
	}
	return out
}

// selects reports whether a policy reaches any port of the workload, and the ports.
func (m *Mesh) selectedPorts(scope PeerAuthScope, ns string, sel labels.Selector, services []string, w knownWorkload) []InboundPort {
	switch scope {
	case ScopeService:
		if !slices.ContainsFunc(services, func(s string) bool { return slices.Contains(w.services, s) }) {
			return nil
		}
		return w.proxy.Inbound
	default:
		if m.applies(scope, ns, sel, nil, w.proxy, InboundPort{}) {
			return w.proxy.Inbound
		}
	}
	return nil
}

// checkSecurityPolicies warns about security policies that are valid but cannot
// do what they seem to: they select no workload, they never match on any port they
// apply to, an ALLOW policy without rules (it denies everything), and namespaces or
// principals that no known workload has.
func (b *builder) checkSecurityPolicies(cfg *config.Set, instances []registry.Instance) {
	workloads := b.knownWorkloads(cfg, instances)
	namespaces := map[string]bool{}
	identities := map[string]bool{}
	for _, w := range workloads {
		namespaces[w.proxy.Namespace] = true
		identities[b.mesh.Identity(w.proxy.Namespace, w.proxy.ServiceAccount)] = true
	}
	for _, s := range b.mesh.Services {
		namespaces[s.Namespace] = true
	}
	for _, pol := range b.mesh.AuthzPolicies {
		obj := pol.obj
		var ports []InboundPort
		for _, w := range workloads {
			ports = append(ports, b.mesh.selectedPorts(pol.Scope, pol.Namespace, pol.selector, pol.Services, w)...)
		}
		switch {
		case len(ports) == 0:
			b.warnf(obj, pol.scopeAt, "the policy applies to no known workload (%s)", describeScope(pol.Scope, pol.Namespace, pol.Selector, pol.Services))
		case pol.Action == AuthzAllow && len(pol.Rules) == 0:
			b.warnf(obj, "spec.rules", "an ALLOW policy without rules matches nothing: it denies every request to the workloads it applies to")
		default:
			for _, r := range pol.Rules {
				if !slices.ContainsFunc(ports, func(p InboundPort) bool { return len(oneRule(pol, r).RulesFor(p.Port, IsHTTP(p.Protocol))) > 0 }) {
					b.warnf(obj, fmt.Sprintf("spec.rules[%d]", r.Index), "this rule can never match on the ports the policy applies to "+
						"(its ports, or HTTP-only fields on TCP ports)")
				}
			}
		}
	}
	b.checkNames(namespaces, identities)
	for _, pol := range b.mesh.JWTPolicies {
		obj := pol.obj
		found := slices.ContainsFunc(workloads, func(w knownWorkload) bool {
			return len(b.mesh.selectedPorts(pol.Scope, pol.Namespace, pol.selector, pol.Services, w)) > 0
		})
		if !found {
			b.warnf(obj, pol.scopeAt, "the policy applies to no known workload (%s)", describeScope(pol.Scope, pol.Namespace, pol.Selector, pol.Services))
		}
	}
}

func oneRule(pol *AuthzPolicy, r *AuthzRule) *AuthzPolicy {
	return &AuthzPolicy{Action: pol.Action, Rules: []*AuthzRule{r}}
}

// nameRef is a namespace or principal named exactly by a policy, to check against
// the known workloads.
type nameRef struct {
	obj       config.ObjectRef
	field     string
	namespace string // set for a namespace
	principal string // set for a principal (without spiffe://)
}

// checkNames warns about exact namespaces and principals that no known workload has.
func (b *builder) checkNames(namespaces, identities map[string]bool) {
	for _, r := range b.nameRefs {
		switch {
		case r.namespace != "" && !namespaces[r.namespace]:
			b.warnf(r.obj, r.field, "no known workload or service is in namespace %q", r.namespace)
		case r.principal != "" && !identities["spiffe://"+r.principal]:
			b.warnf(r.obj, r.field, "no known workload has the identity %q (known: %s)", r.principal, strings.Join(trimmed(identities), ", "))
		}
	}
}

func trimmed(ids map[string]bool) []string {
	var out []string
	for id := range ids {
		out = append(out, strings.TrimPrefix(id, "spiffe://"))
	}
	slices.Sort(out)
	return out
}

func scopeField(s PeerAuthScope, singular bool) string {
	switch {
	case s == ScopeWorkload:
		return "spec.selector"
	case s == ScopeService && singular:
		return "spec.targetRef"
	case s == ScopeService:
		return "spec.targetRefs"
	}
	return "metadata.namespace"
}

func describeScope(s PeerAuthScope, ns string, sel map[string]string, services []string) string {
	switch s {
	case ScopeWorkload:
		return fmt.Sprintf("selector %v in namespace %s", sel, ns)
	case ScopeService:
		return "Services " + strings.Join(services, ", ")
	case ScopeMesh:
		return "the whole mesh"
	}
	return "namespace " + ns
}

func (b *builder) warnf(obj config.ObjectRef, field, format string, args ...any) {
	b.mesh.Warnings = append(b.mesh.Warnings, newError(obj, field, format, args...))
}

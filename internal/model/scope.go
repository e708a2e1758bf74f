package model

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
)

// Visibility: which services, and which routes, a proxy sees. Two things limit it,
// as in Istio: exportTo (a Service's networking.istio.io/exportTo annotation, a
// ServiceEntry's or a VirtualService's spec.exportTo) says which namespaces may see
// a resource, and the Sidecar that applies to a proxy says which of those it wants
// (its egress hosts). The generator emits a proxy's outbound configuration for the
// services its Scope sees, nothing else (docs/control-plane.md, "Scoping").

// ExportTo is the namespaces a resource is visible from; nil: every namespace.
type ExportTo []string

// exportTo resolves an exportTo list of the resource in namespace ns: "." is ns,
// "*" (or an empty list) every namespace.
func exportTo(values []string, ns string) ExportTo {
	if len(values) == 0 || slices.Contains(values, "*") {
		return nil
	}
	out := make(ExportTo, 0, len(values))
	for _, v := range values {
		if v == "." {
			v = ns
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Includes reports whether namespace ns may see the resource.
func (e ExportTo) Includes(ns string) bool { return e == nil || slices.Contains(e, ns) }

// Sidecar is the part of an Istio Sidecar Trellis implements: the proxies it
// selects, the services they see, and their outbound traffic policy.
type Sidecar struct {
	// Name is namespace/name.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Selector is the workloadSelector's labels; nil: every proxy of the namespace
	// (or, in the root namespace, of every namespace without a Sidecar of its own).
	Selector map[string]string `json:"selector,omitempty"`
	// Egress are the hosts the proxies see; nil: every service exported to them.
	Egress []EgressHost `json:"egress,omitempty"`
	// OutboundTrafficPolicy is REGISTRY_ONLY, ALLOW_ANY, or "" (the sidecar's own
	// setting).
	OutboundTrafficPolicy string `json:"outboundTrafficPolicy,omitempty"`

	selector labels.Selector
}

// EgressHost is one egress host: services of Namespace ("*" any, "." the proxy's)
// whose host name matches Host ("*", "*.suffix" or a name).
type EgressHost struct {
	Namespace string `json:"namespace"`
	Host      string `json:"host"`
}

// matches reports whether svc, seen from a proxy in namespace from, is one of the
// hosts. A Kubernetes-style service matches by its FQDN, a ServiceEntry host by
// itself.
func (h EgressHost) matches(svc *Service, from string) bool {
	switch h.Namespace {
	case "*":
	case ".":
		if svc.Namespace != from {
			return false
		}
	default:
		if svc.Namespace != h.Namespace {
			return false
		}
	}
	if h.Host == "*" {
		return true
	}
	if suffix, ok := strings.CutPrefix(h.Host, "*"); ok {
		return strings.HasSuffix(svc.FQDN, suffix)
	}
	return svc.FQDN == h.Host
}

// Scope is what one proxy sees: the services exported to its namespace that its
// Sidecar (if any) selects as egress hosts.
type Scope struct {
	Namespace string
	// Sidecar is the Sidecar that applies to the proxy; nil: none.
	Sidecar *Sidecar
}

// Sees reports whether a proxy of the scope sees svc.
func (s Scope) Sees(svc *Service) bool {
	if !svc.ExportTo.Includes(s.Namespace) {
		return false
	}
	if s.Sidecar == nil || s.Sidecar.Egress == nil {
		return true
	}
	for _, h := range s.Sidecar.Egress {
		if h.matches(svc, s.Namespace) {
			return true
		}
	}
	return false
}

// Key identifies the scope: proxies with equal keys see the same services.
func (s Scope) Key() string {
	if s.Sidecar == nil {
		return s.Namespace
	}
	return s.Namespace + "|" + s.Sidecar.Name
}

// RegistryOnly reports whether a proxy of the scope refuses connections to unknown
// destinations; own is the proxy's own setting, which a Sidecar's
// outboundTrafficPolicy overrides.
func (s Scope) RegistryOnly(own bool) bool {
	if s.Sidecar == nil || s.Sidecar.OutboundTrafficPolicy == "" {
		return own
	}
	return s.Sidecar.OutboundTrafficPolicy == networkingapi.OutboundTrafficPolicy_REGISTRY_ONLY.String()
}

// ScopeOf returns what p sees. The Sidecar that applies is, as in Istio, the first
// (by name) Sidecar of p's namespace whose workloadSelector matches p's labels, else
// the one of p's namespace without a selector, else the one of the root namespace
// without a selector.
func (m *Mesh) ScopeOf(p *Proxy) Scope {
	s := Scope{Namespace: p.Namespace}
	var nsDefault, rootDefault *Sidecar
	for _, sc := range m.Sidecars {
		switch {
		case sc.Namespace == p.Namespace && sc.selector != nil:
			if sc.selector.Matches(labels.Set(p.Labels)) {
				s.Sidecar = sc
				return s
			}
		case sc.Namespace == p.Namespace:
			nsDefault = sc
		case sc.Namespace == m.RootNamespace && sc.selector == nil:
			rootDefault = sc
		}
	}
	s.Sidecar = cmp.Or(nsDefault, rootDefault)
	return s
}

// addSidecars indexes the Sidecars. Two Sidecars without a selector in one
// namespace: the first by name applies, the other is reported. A Sidecar with a
// selector in the root namespace selects nothing (Istio applies root-namespace
// Sidecars to every namespace only without a selector), and is reported.
func (b *builder) addSidecars(sidecars []config.Sidecar) {
	defaults := map[string]string{}
	for _, o := range sidecars {
		obj := objectRef("Sidecar", &o.ObjectMeta, o.Pos)
		ns := namespaceOr(o.Namespace)
		sc := &Sidecar{Name: key(ns, o.Name), Namespace: ns}
		if sel := o.Spec.GetWorkloadSelector().GetLabels(); len(sel) > 0 {
			sc.Selector = sel
			sc.selector = labels.SelectorFromSet(sel)
		} else {
			if first, dup := defaults[ns]; dup {
				b.configErrorf(obj, "spec", "namespace %s already has the Sidecar %s without a workloadSelector; this one is ignored", ns, first)
				continue
			}
			defaults[ns] = sc.Name
		}
		if sc.selector != nil && ns == b.mesh.RootNamespace {
			b.configErrorf(obj, "spec.workloadSelector", "a Sidecar of the root namespace %s with a workloadSelector selects no proxy; ignored", ns)
			continue
		}
		for i, eg := range o.Spec.GetEgress() {
			for j, h := range eg.GetHosts() {
				if msg := config.CheckEgressHost(h); msg != "" {
					b.configErrorf(obj, "spec.egress["+strconv.Itoa(i)+"].hosts["+strconv.Itoa(j)+"]", "%s; skipped", msg)
					continue
				}
				hostNS, host, _ := strings.Cut(h, "/")
				if hostNS == "." && ns != b.mesh.RootNamespace {
					hostNS = ns
				}
				sc.Egress = append(sc.Egress, EgressHost{Namespace: hostNS, Host: strings.ToLower(host)})
			}
		}
		if len(o.Spec.GetEgress()) > 0 && sc.Egress == nil {
			sc.Egress = []EgressHost{} // every host was invalid: the proxies see nothing
		}
		if p := o.Spec.GetOutboundTrafficPolicy(); p != nil {
			sc.OutboundTrafficPolicy = p.GetMode().String()
		}
		b.mesh.Sidecars = append(b.mesh.Sidecars, sc)
	}
	slices.SortStableFunc(b.mesh.Sidecars, func(a, b *Sidecar) int { return cmp.Compare(a.Name, b.Name) })
}

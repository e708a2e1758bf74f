package model

import (
	"cmp"
	"maps"
	"slices"

	securityapi "istio.io/api/security/v1beta1"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
)

// MTLSMode is the mutual TLS mode of a workload port, from PeerAuthentication: what
// its sidecar's inbound listener accepts.
type MTLSMode string

// The modes of a workload port.
const (
	// MTLSPermissive accepts mutual TLS and plaintext (the default).
	MTLSPermissive MTLSMode = "PERMISSIVE"
	// MTLSStrict accepts only mutual TLS.
	MTLSStrict MTLSMode = "STRICT"
	// MTLSDisable accepts only plaintext.
	MTLSDisable MTLSMode = "DISABLE"
	// mtlsUnset inherits from the next level.
	mtlsUnset MTLSMode = ""
)

// PeerAuthScope says which workloads a PeerAuthentication applies to.
type PeerAuthScope string

// The scopes, narrowest first.
const (
	// ScopeWorkload: the workloads of its namespace that its selector matches.
	ScopeWorkload PeerAuthScope = "Workload"
	// ScopeNamespace: every workload of its namespace (no selector).
	ScopeNamespace PeerAuthScope = "Namespace"
	// ScopeMesh: every workload (no selector, in the root namespace).
	ScopeMesh PeerAuthScope = "Mesh"
)

// PeerAuthPolicy is one PeerAuthentication in force.
type PeerAuthPolicy struct {
	// Source names the document: "PeerAuthentication default/strict".
	Source    string            `json:"source"`
	Namespace string            `json:"namespace"`
	Scope     PeerAuthScope     `json:"scope"`
	Selector  map[string]string `json:"selector,omitempty"`
	// Mode is the policy's mode; "" (UNSET) inherits.
	Mode MTLSMode `json:"mode,omitempty"`
	// PortLevel are the modes of single workload ports (spec.ports[].port).
	PortLevel map[uint32]MTLSMode `json:"portLevel,omitempty"`

	selector labels.Selector
	order    string // creation time, then namespace/name: the oldest wins
}

// addPeerAuthentications indexes the PeerAuthentications of cfg. At each level the
// oldest policy (creationTimestamp, then namespace/name) wins, as in Istio; a second
// mesh-wide or namespace-wide policy is reported and ignored.
func (b *builder) addPeerAuthentications(pas []config.PeerAuthentication) {
	var all []*PeerAuthPolicy
	refs := map[*PeerAuthPolicy]config.ObjectRef{}
	for _, pa := range pas {
		obj := objectRef("PeerAuthentication", &pa.ObjectMeta, pa.Pos)
		spec := &pa.Spec
		p := &PeerAuthPolicy{
			Source:    obj.Kind + " " + obj.Namespace + "/" + obj.Name,
			Namespace: obj.Namespace,
			Mode:      mtlsModeOf(spec.GetMtls().GetMode()),
			order:     pa.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z") + " " + obj.Namespace + "/" + obj.Name,
		}
		switch sel := spec.GetSelector().GetMatchLabels(); {
		case len(sel) > 0:
			p.Scope, p.Selector, p.selector = ScopeWorkload, sel, labels.SelectorFromSet(sel)
		case obj.Namespace == b.opts.rootNamespace:
			p.Scope = ScopeMesh
		default:
			p.Scope = ScopeNamespace
		}
		for _, port := range slices.Sorted(maps.Keys(spec.GetPortLevelMtls())) {
			if p.Scope != ScopeWorkload {
				// config refuses this at parse time; keep the model safe anyway.
				break
			}
			if p.PortLevel == nil {
				p.PortLevel = map[uint32]MTLSMode{}
			}
			if m := mtlsModeOf(spec.GetPortLevelMtls()[port].GetMode()); m != mtlsUnset {
				p.PortLevel[port] = m
			}
		}
		refs[p] = obj
		all = append(all, p)
	}
	slices.SortStableFunc(all, func(a, b *PeerAuthPolicy) int { return cmp.Compare(a.order, b.order) })
	wide := map[string]*PeerAuthPolicy{} // mesh- and namespace-wide, by namespace
	for _, p := range all {
		if p.Scope != ScopeWorkload {
			if first := wide[p.Namespace]; first != nil {
				b.configErrorf(refs[p], "spec.selector", "%s already applies to every workload of %s (the oldest wins); this one is ignored",
					first.Source, scopeName(p))
				continue
			}
			wide[p.Namespace] = p
		}
		b.mesh.PeerAuthentications = append(b.mesh.PeerAuthentications, p)
	}
}

func scopeName(p *PeerAuthPolicy) string {
	if p.Scope == ScopeMesh {
		return "the mesh"
	}
	return "namespace " + p.Namespace
}

func mtlsModeOf(m securityapi.PeerAuthentication_MutualTLS_Mode) MTLSMode {
	switch m {
	case securityapi.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive
	case securityapi.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	case securityapi.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	}
	return mtlsUnset
}

// MTLSMode is the effective mode of a workload port: the port-level mode of the
// oldest workload policy whose selector matches, else that policy's mode, else the
// namespace policy's, else the mesh policy's, else PERMISSIVE. UNSET inherits from
// the next level.
func (m *Mesh) MTLSMode(namespace string, workloadLabels map[string]string, port uint32) MTLSMode {
	namespace = namespaceOr(namespace)
	var workload, ns, mesh *PeerAuthPolicy
	for _, p := range m.PeerAuthentications {
		switch {
		case p.Scope == ScopeMesh:
			mesh = p
			if p.Namespace == namespace && ns == nil {
				ns = p
			}
		case p.Namespace != namespace:
		case p.Scope == ScopeNamespace:
			ns = p
		case workload == nil && p.selector.Matches(labels.Set(workloadLabels)):
			workload = p
		}
	}
	if workload != nil {
		if mode := workload.PortLevel[port]; mode != mtlsUnset {
			return mode
		}
		if workload.Mode != mtlsUnset {
			return workload.Mode
		}
	}
	if ns != nil && ns.Mode != mtlsUnset {
		return ns.Mode
	}
	if mesh != nil && mesh.Mode != mtlsUnset {
		return mesh.Mode
	}
	return MTLSPermissive
}

// workloadPolicyConflicts reports, for a registered workload, the workload policies
// that match it after the oldest one, which are ignored.
func (b *builder) workloadPolicyConflicts(nodeID, namespace string, workloadLabels map[string]string) {
	var first *PeerAuthPolicy
	for _, p := range b.mesh.PeerAuthentications {
		if p.Scope != ScopeWorkload || p.Namespace != namespace || !p.selector.Matches(labels.Set(workloadLabels)) {
			continue
		}
		if first == nil {
			first = p
			continue
		}
		b.errorf("%s and %s both select workload %s; %s (the oldest) is used", first.Source, p.Source, nodeID, first.Source)
	}
}

// checkMixedModes reports the service ports that auto mTLS cannot serve well: some
// endpoints accept only plaintext (DISABLE) and others mutual TLS. Clients use mutual
// TLS toward such a port, which the DISABLE endpoints refuse.
func (b *builder) checkMixedModes() {
	for _, s := range b.mesh.Services {
		if s.Origin == OriginServiceEntry {
			continue
		}
		for _, p := range s.Ports {
			if p.Policy != nil && p.Policy.TLS != nil {
				continue
			}
			var disabled []string
			for _, ep := range p.Endpoints {
				if ep.MTLS == MTLSDisable {
					disabled = append(disabled, ep.NodeID)
				}
			}
			if len(disabled) > 0 && len(disabled) < len(p.Endpoints) {
				b.errorf("service %s port %d: the sidecars %v accept only plaintext (PeerAuthentication DISABLE, or a sidecar without mutual TLS) but the others mutual TLS; "+
					"clients use mutual TLS, which %v refuse: align the PeerAuthentications, or set a DestinationRule tls mode",
					s.FQDN, p.Number, disabled, disabled)
			}
		}
	}
}

package model

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/registry"
)

// DefaultRootNamespace is the namespace whose selector-less PeerAuthentication
// applies to the whole mesh (Istio's is istio-system).
const DefaultRootNamespace = "trellis-system"

// Option configures Build.
type Option func(*options)

type options struct {
	trustDomain   string
	rootNamespace string
	// authorization (authz_options.go)
	extAuthz          []ExtAuthzProvider
	jwks              func(uri string) (string, bool)
	pathNormalization PathNormalization
	// endpoints from service discovery (discovered.go)
	discovered []DiscoveredEndpoint
	// rate limiting (ratelimit.go)
	rateLimitService *RateLimitService
	// HTTP/2 between sidecars (h2upgrade.go)
	h2Upgrade bool
}

// WithTrustDomain sets the trust domain of the workloads' SPIFFE IDs; default
// cluster.local.
func WithTrustDomain(td string) Option {
	return func(o *options) {
		if td != "" {
			o.trustDomain = td
		}
	}
}

// WithRootNamespace sets the namespace of mesh-wide policies; default
// DefaultRootNamespace.
func WithRootNamespace(ns string) Option {
	return func(o *options) {
		if ns != "" {
			o.rootNamespace = ns
		}
	}
}

// Build derives the mesh from configuration and the registered instances. cfg may be
// nil (no configuration yet). The result shares nothing with its inputs.
func Build(cfg *config.Set, instances []registry.Instance, opts ...Option) *Mesh {
	if cfg == nil {
		cfg = &config.Set{}
	}
	o := options{trustDomain: identity.DefaultTrustDomain, rootNamespace: DefaultRootNamespace,
		pathNormalization: DefaultPathNormalization, h2Upgrade: DefaultH2Upgrade}
	for _, opt := range opts {
		opt(&o)
	}
	b := &builder{mesh: &Mesh{TrustDomain: o.trustDomain, RootNamespace: o.rootNamespace, H2Upgrade: o.h2Upgrade}, opts: o,
		byKey: make(map[string]*Service), selectors: make(map[string]selectorService),
		ruleOf: make(map[string]string), reported: make(map[string]bool)}
	// Endpoints carry their port's mode, so policies come first.
	b.addPeerAuthentications(cfg.PeerAuthentications)
	for _, s := range cfg.Services {
		b.addService(s)
	}
	for _, w := range cfg.Workloads {
		b.addWorkload(w)
	}
	for _, w := range cfg.Workloads {
		b.addBacker(w)
	}
	for _, inst := range instances {
		b.addDeclaredByInstance(inst)
	}
	b.indexNamespaces()
	for _, inst := range instances {
		b.addEndpoints(inst)
		b.workloadPolicyConflicts(inst.NodeID, namespaceOr(inst.Metadata.Namespace), inst.Metadata.Labels)
	}
	b.inNamespace = nil
	b.addDiscoveredEndpoints()
	for _, se := range cfg.ServiceEntries {
		b.addServiceEntry(se)
	}
	b.mesh.finish()

	// Traffic rules refer to services by name, so they come once every service is
	// indexed.
	for _, dr := range cfg.DestinationRules {
		b.addDestinationRule(dr)
	}
	for _, vs := range cfg.VirtualServices {
		b.addVirtualService(vs)
	}
	b.addGatewayRoutes(cfg.HTTPRoutes, cfg.GRPCRoutes)
	b.addSidecars(cfg.Sidecars)
	b.checkMixedModes()
	b.addSecurityPolicies(cfg, instances)
	b.addRateLimits(cfg)
	b.mesh.Unsupported = append(Unsupported(cfg), b.mesh.Unsupported...)
	sortErrors(b.mesh.ConfigErrors)
	sortErrors(b.mesh.Unsupported)
	return b.mesh
}

type builder struct {
	opts  options
	mesh  *Mesh
	byKey map[string]*Service // namespace/name

	// selectors of v1/Services, by namespace/name.
	selectors map[string]selectorService
	// ruleOf names the DestinationRule in force for a service, by FQDN.
	ruleOf map[string]string
	// reported are the traffic problems already recorded, so that a rule applied to
	// several ports reports a problem once.
	reported map[string]bool
	// nameRefs are the namespaces and principals security policies name exactly.
	nameRefs []nameRef
	// inNamespace indexes mesh.Services by namespace, in their order, while no
	// service is added (indexNamespaces); nil otherwise.
	inNamespace map[string][]*Service
}

// indexNamespaces indexes the services by namespace, so that matching each of
// thousands of instances against the services of its own namespace does not scan
// every service of the mesh. Valid until a service is added or the services are
// reordered.
func (b *builder) indexNamespaces() {
	b.inNamespace = make(map[string][]*Service)
	for _, s := range b.mesh.Services {
		b.inNamespace[s.Namespace] = append(b.inNamespace[s.Namespace], s)
	}
}

// servicesIn lists the services of namespace ns, in the mesh's order.
func (b *builder) servicesIn(ns string) []*Service {
	if b.inNamespace != nil {
		return b.inNamespace[ns]
	}
	var out []*Service
	for _, s := range b.mesh.Services {
		if s.Namespace == ns {
			out = append(out, s)
		}
	}
	return out
}

type selectorService struct {
	selector labels.Selector
	ports    []corev1.ServicePort
}

func key(namespace, name string) string { return namespace + "/" + name }

func namespaceOr(ns string) string {
	if ns == "" {
		return names.DefaultNamespace
	}
	return ns
}

// protocolOf normalises a protocol written in metadata: upper case, default HTTP.
func protocolOf(p string) v1alpha1.Protocol {
	if p == "" {
		return v1alpha1.ProtocolHTTP
	}
	return v1alpha1.Protocol(strings.ToUpper(p))
}

func (b *builder) errorf(format string, args ...any) {
	b.mesh.Errors = append(b.mesh.Errors, fmt.Sprintf(format, args...))
}

func (b *builder) newService(name, namespace string, origin Origin, source string) *Service {
	s := &Service{
		Name:      name,
		Namespace: namespace,
		FQDN:      names.ServiceFQDN(name, namespace),
		Origin:    origin,
		Source:    source,
	}
	b.byKey[key(namespace, name)] = s
	b.mesh.Services = append(b.mesh.Services, s)
	return s
}

func (b *builder) addService(cs config.Service) {
	ns := namespaceOr(cs.Namespace)
	s := b.newService(cs.Name, ns, OriginService, cs.Pos.String())
	s.Addresses = serviceAddresses(cs.Spec)
	if v, ok := cs.Annotations[config.ExportToAnnotation]; ok {
		s.ExportTo = exportTo(config.ExportToList(v), ns)
	}
	sel := labels.Nothing()
	if len(cs.Spec.Selector) > 0 {
		sel = labels.SelectorFromSet(cs.Spec.Selector)
	}
	b.selectors[key(ns, cs.Name)] = selectorService{selector: sel, ports: cs.Spec.Ports}
	for _, p := range cs.Spec.Ports {
		if p.Port <= 0 {
			continue
		}
		s.Ports = append(s.Ports, &Port{
			Name:     p.Name,
			Number:   uint32(p.Port),
			Protocol: config.ServicePortProtocolOrAuto(p),
		})
	}
}

func (b *builder) addWorkload(w config.Workload) {
	if w.Spec.Service == "" {
		return
	}
	ports := make([]declaredPort, 0, len(w.Spec.Ports))
	for _, p := range w.Spec.Ports {
		ports = append(ports, declaredPort{name: p.Name, number: uint32(p.Port), protocol: protocolOf(string(p.Protocol))})
	}
	b.declare(w.Spec.Service, namespaceOr(w.Namespace), ports, fmt.Sprintf("Workload %s/%s (%s)", namespaceOr(w.Namespace), w.Name, w.Pos), w.Pos.String())
}

func (b *builder) addDeclaredByInstance(inst registry.Instance) {
	md := inst.Metadata
	if md.Service == "" {
		return
	}
	ports := make([]declaredPort, 0, len(md.Ports))
	for _, p := range md.Ports {
		ports = append(ports, declaredPort{name: p.Name, number: p.Port, protocol: protocolOf(p.Protocol)})
	}
	b.declare(md.Service, namespaceOr(md.Namespace), ports, "sidecar "+inst.NodeID, "")
}

type declaredPort struct {
	name     string
	number   uint32
	protocol v1alpha1.Protocol
}

// declare adds ports to the implicit service name/ns, creating it if needed. A
// v1/Service of the same name takes precedence and is left alone.
func (b *builder) declare(name, ns string, ports []declaredPort, who, source string) {
	s := b.byKey[key(ns, name)]
	if s == nil {
		s = b.newService(name, ns, OriginWorkload, source)
	}
	if s.Origin != OriginWorkload {
		return
	}
	for _, dp := range ports {
		if dp.number == 0 {
			continue
		}
		if p := s.Port(dp.number); p != nil {
			if p.Protocol != dp.protocol || p.Name != dp.name {
				b.errorf("service %s/%s port %d: %s declares it as %s %q, but it is already %s %q; keeping %s %q",
					ns, name, dp.number, who, dp.protocol, dp.name, p.Protocol, p.Name, p.Protocol, p.Name)
			}
			continue
		}
		s.Ports = append(s.Ports, &Port{Name: dp.name, Number: dp.number, Protocol: dp.protocol})
	}
}

// addEndpoints makes an instance an endpoint of every service that selects it, once
// it serves; a starting instance gets its inbound protocols all the same, so that its
// listeners do not change when it starts serving.
func (b *builder) addEndpoints(inst registry.Instance) {
	md := inst.Metadata
	for _, s := range b.servicesIn(namespaceOr(md.Namespace)) {
		switch s.Origin {
		case OriginWorkload:
			if md.Service != s.Name {
				continue
			}
			for _, p := range s.Ports {
				if mp := findPort(md.Ports, "", p.Number); mp != nil && !inst.Starting {
					b.addEndpoint(p, mp, inst)
				}
			}
		case OriginService:
			sel := b.selectors[key(s.Namespace, s.Name)]
			if !sel.selector.Matches(labels.Set(md.Labels)) {
				continue
			}
			for _, sp := range sel.ports {
				p := s.Port(uint32(sp.Port))
				if p == nil {
					continue
				}
				if mp := targetPort(md.Ports, sp); mp != nil {
					if !inst.Starting {
						b.addEndpoint(p, mp, inst)
					}
					b.markAutoInbound(p, mp, inst)
				}
			}
		}
	}
}

// addEndpoint makes the instance's port mp an endpoint of p, with the instance's
// identity and the port's mTLS mode.
func (b *builder) addEndpoint(p *Port, mp *bootstrap.Port, inst registry.Instance) {
	if mp.Inbound == "" {
		return
	}
	md := inst.Metadata
	mode := b.mesh.MTLSMode(md.Namespace, md.Labels, mp.Port)
	if !md.MTLS {
		if mode == MTLSStrict {
			b.errorf("sidecar %s does not take part in mutual TLS (no certificate source, or a sidecar without it): "+
				"its port %d accepts plaintext although PeerAuthentication says STRICT", inst.NodeID, mp.Port)
		}
		mode = MTLSDisable
	}
	p.Endpoints = append(p.Endpoints, Endpoint{
		Address:  mp.Inbound,
		NodeID:   inst.NodeID,
		Identity: b.mesh.Identity(md.Namespace, md.ServiceAccount),
		MTLS:     mode,
		Labels:   md.Labels,
	})
}

// addBacker records a configured Workload's identity on the services it backs: the
// one it declares, and the v1/Services of its namespace that select it.
func (b *builder) addBacker(w config.Workload) {
	ns := namespaceOr(w.Namespace)
	bk := backer{labels: w.Labels, identity: b.mesh.Identity(ns, w.Spec.ServiceAccount)}
	for _, s := range b.mesh.Services {
		if s.Namespace != ns {
			continue
		}
		switch s.Origin {
		case OriginWorkload:
			if s.Name == w.Spec.Service {
				s.backers = append(s.backers, bk)
			}
		case OriginService:
			if b.selectors[key(ns, s.Name)].selector.Matches(labels.Set(w.Labels)) {
				s.backers = append(s.backers, bk)
			}
		}
	}
}

// targetPort picks the workload port a Service port reaches: the targetPort if it
// names or numbers one, else the port with the same name, else the same number.
func targetPort(ports []bootstrap.Port, sp corev1.ServicePort) *bootstrap.Port {
	if tp := sp.TargetPort; tp.StrVal != "" || tp.IntVal != 0 {
		if mp := findPort(ports, tp.StrVal, uint32(max(tp.IntVal, 0))); mp != nil {
			return mp
		}
	}
	if sp.Name != "" {
		if mp := findPort(ports, sp.Name, 0); mp != nil {
			return mp
		}
	}
	return findPort(ports, "", uint32(sp.Port))
}

// findPort returns the port with the given name (if name is set) or number.
func findPort(ports []bootstrap.Port, name string, number uint32) *bootstrap.Port {
	for i := range ports {
		p := &ports[i]
		if name != "" && p.Name == name {
			return p
		}
		if name == "" && number != 0 && p.Port == number {
			return p
		}
	}
	return nil
}

package model

import (
	"cmp"
	"slices"
	"strings"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/names"
)

// Origin says which document defined a service.
type Origin string

// The origins of a service.
const (
	// OriginService is a v1/Service document.
	OriginService Origin = "Service"
	// OriginWorkload is the spec.service of one or more Workloads (or the service a
	// registered sidecar declares in its metadata).
	OriginWorkload Origin = "Workload"
	// OriginServiceEntry is one host of an Istio ServiceEntry.
	OriginServiceEntry Origin = "ServiceEntry"
)

// Resolution says how the endpoints of a service are found.
type Resolution string

// The resolutions.
const (
	// ResolutionEndpoints: the endpoints are addresses the control plane knows (the
	// registered sidecars, or a STATIC ServiceEntry's endpoints), sent over EDS.
	ResolutionEndpoints Resolution = ""
	// ResolutionDNS: the endpoints are host names the sidecar resolves (a DNS
	// ServiceEntry).
	ResolutionDNS Resolution = "DNS"
)

// Mesh is the IR of the whole mesh: every service with its ports and endpoints.
type Mesh struct {
	// Services are sorted by namespace, then name.
	Services []*Service `json:"services"`
	// Errors are problems found while building; the parts concerned were skipped or
	// resolved as each error says.
	Errors []string `json:"errors,omitempty"`
	// ConfigErrors are traffic rules (VirtualService, DestinationRule, ServiceEntry,
	// HTTPRoute, GRPCRoute) that could not be applied, each naming its resource and
	// field; the part concerned was skipped.
	ConfigErrors []*config.Error `json:"configErrors,omitempty"`
	// Unsupported are the fields of traffic resources that Trellis does not
	// implement, each naming its resource and field. They are ignored, and reported
	// so that nobody believes they are in force.
	Unsupported []*config.Error `json:"unsupported,omitempty"`

	// TrustDomain is the trust domain of the mesh's SPIFFE IDs.
	TrustDomain string `json:"trustDomain"`
	// RootNamespace holds the mesh-wide PeerAuthentication.
	RootNamespace string `json:"rootNamespace"`
	// PeerAuthentications are the policies in force, oldest first (see MTLSMode).
	PeerAuthentications []*PeerAuthPolicy `json:"peerAuthentications,omitempty"`
	// Authorization (authz.go, jwt.go): the AuthorizationPolicies and
	// RequestAuthentications in force, in document order; the external authorizers
	// and the path normalization of the control plane's options ("" is the default,
	// DECODE_AND_MERGE_SLASHES).
	AuthzPolicies     []*AuthzPolicy     `json:"authzPolicies,omitempty"`
	JWTPolicies       []*JWTPolicy       `json:"jwtPolicies,omitempty"`
	ExtAuthz          []ExtAuthzProvider `json:"extAuthz,omitempty"`
	PathNormalization PathNormalization  `json:"pathNormalization,omitempty"`
	// Warnings are configurations that are valid but probably not what was meant
	// (an authorization policy that can never match, an unknown namespace).
	Warnings []*config.Error `json:"warnings,omitempty"`
	// RateLimits are the rules of the RateLimitPolicies, in document order, and
	// RateLimitService where Global ones are counted (ratelimit.go); nil: none.
	RateLimits       []*RateLimitRule  `json:"rateLimits,omitempty"`
	RateLimitService *RateLimitService `json:"rateLimitService,omitempty"`

	// Sidecars are the Sidecars in force, by namespace/name (scope.go).
	Sidecars []*Sidecar `json:"sidecars,omitempty"`

	// H2Upgrade: HTTP/1.1 requests between sidecars travel over HTTP/2 unless a
	// DestinationRule says otherwise (h2upgrade.go).
	H2Upgrade bool `json:"h2Upgrade,omitempty"`

	byFQDN map[string]*Service
	// autoInbound holds "<node ID>/<port>" for the workload ports whose protocol
	// is detected (protocol.go).
	autoInbound map[string]bool
	// podInbound holds, by node ID, the inbound ports of the pods that service
	// discovery lists (discovered.go), for the sidecars that announce their pod IP.
	podInbound map[string][]InboundPort
	// podLabels holds the labels of those pods, by node ID.
	podLabels map[string]map[string]string
}

// Service is one service of the mesh.
type Service struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// FQDN is <name>.<namespace>.svc.cluster.local.
	FQDN   string `json:"fqdn"`
	Origin Origin `json:"origin"`
	// Source is where the defining document is (file:line), if known.
	Source string `json:"source,omitempty"`
	// Ports are sorted by number.
	Ports []*Port `json:"ports"`
	// DefaultPort is the port a host name without a port reaches: 80 if the service
	// has it (as an HTTP-family port), else its only HTTP-family port; 0 if none.
	DefaultPort uint32 `json:"defaultPort,omitempty"`
	// Resolution says how the endpoints are found (ServiceEntry DNS resolution).
	Resolution Resolution `json:"resolution,omitempty"`
	// External is true for a ServiceEntry with location MESH_EXTERNAL: the endpoints
	// have no sidecar.
	External bool `json:"external,omitempty"`
	// SubjectAltNames are identities a ServiceEntry's endpoints present (its
	// subjectAltNames), checked when a DestinationRule asks for ISTIO_MUTUAL.
	SubjectAltNames []string `json:"subjectAltNames,omitempty"`
	// Addresses are the service's virtual IPs (a Kubernetes Service's cluster IPs),
	// by which transparently intercepted traffic is matched to it; empty: none.
	Addresses []string `json:"addresses,omitempty"`
	// ExportTo are the namespaces that see the service (a Service's
	// networking.istio.io/exportTo annotation, a ServiceEntry's exportTo); nil: all.
	ExportTo ExportTo `json:"exportTo,omitempty"`

	// backers are the Workloads declared in config that back the service: their
	// identities are expected even before their sidecars connect.
	backers []backer
}

// Port is one port of a service with the endpoints that serve it.
type Port struct {
	Name     string            `json:"name,omitempty"`
	Number   uint32            `json:"number"`
	Protocol v1alpha1.Protocol `json:"protocol"`
	// Endpoints are sorted by address.
	Endpoints []Endpoint `json:"endpoints"`

	// Policy is the DestinationRule's traffic policy for the port (host level merged
	// with the port-level settings); nil: none.
	Policy *TrafficPolicy `json:"policy,omitempty"`
	// RuleExportTo are the namespaces whose proxies the DestinationRule's
	// policies apply to (its exportTo); nil: all. See ClusterFrom.
	RuleExportTo ExportTo `json:"ruleExportTo,omitempty"`
	// Subsets are the DestinationRule's subsets, sorted by name.
	Subsets []*Subset `json:"subsets,omitempty"`
	// Routes are the HTTP routes of the port in the order they are tried; empty: all
	// requests go to the port's cluster. See RoutesFor.
	Routes []*Route `json:"routes,omitempty"`
	// TCPRoutes are the TCP routes of a TCP port; the first that applies to a proxy
	// is used.
	TCPRoutes []*TCPRoute `json:"tcpRoutes,omitempty"`

	// routedBy names the document that gave the port its routes, for conflicts.
	routedBy string
}

// Endpoint is a registered sidecar's inbound address for a service port.
type Endpoint struct {
	// Address is host:port, the sidecar's inbound listener for the port.
	Address string `json:"address"`
	// NodeID is the xDS node ID of the sidecar; empty for a ServiceEntry endpoint.
	NodeID string `json:"nodeID,omitempty"`
	// Identity is the sidecar's SPIFFE ID; empty for a ServiceEntry endpoint.
	Identity string `json:"identity,omitempty"`
	// MTLS is the effective PeerAuthentication mode of the sidecar's port (DISABLE
	// for a sidecar that does not take part in mutual TLS); empty for a ServiceEntry
	// endpoint.
	MTLS MTLSMode `json:"mtls,omitempty"`
	// Labels are the endpoint's labels, which DestinationRule subsets select.
	Labels map[string]string `json:"-"`
}

// IsHTTP reports whether a protocol is of the HTTP family (HTTP, HTTP2, GRPC): its
// traffic is routed by request rather than forwarded as bytes. AUTO (detected) counts:
// its HTTP requests are routed, the rest carried as TCP (protocol.go).
func IsHTTP(p v1alpha1.Protocol) bool {
	switch p {
	case v1alpha1.ProtocolHTTP, v1alpha1.ProtocolHTTP2, v1alpha1.ProtocolGRPC, v1alpha1.ProtocolAuto:
		return true
	}
	return false
}

// Service returns the service with the given FQDN (or ServiceEntry host), or nil.
func (m *Mesh) Service(fqdn string) *Service {
	return m.byFQDN[strings.ToLower(fqdn)]
}

// Aliases are the host names by which a client in namespace from reaches s: for a
// Kubernetes-style service its names as Kubernetes resolves them, for a
// ServiceEntry host the host itself.
func (s *Service) Aliases(from string) []string {
	if s.Origin == OriginServiceEntry {
		return []string{s.FQDN}
	}
	return names.HostAliases(s.Name, s.Namespace, from)
}

// Resolve finds a service by a name as a client in namespace from would write it:
// name, name.namespace, name.namespace.svc or the FQDN. It returns nil if there is
// no such service.
func (m *Mesh) Resolve(name, from string) *Service {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if s := m.byFQDN[name]; s != nil && s.Origin == OriginServiceEntry {
		return s
	}
	parts := strings.Split(name, ".")
	switch {
	case len(parts) == 1:
		return m.Service(names.ServiceFQDN(parts[0], from))
	case len(parts) == 2:
		return m.Service(names.ServiceFQDN(parts[0], parts[1]))
	case len(parts) == 3 && parts[2] == "svc":
		return m.Service(names.ServiceFQDN(parts[0], parts[1]))
	}
	return m.Service(name)
}

// Port returns the service's port with the given number, or nil.
func (s *Service) Port(number uint32) *Port {
	for _, p := range s.Ports {
		if p.Number == number {
			return p
		}
	}
	return nil
}

// finish sorts everything and indexes the services.
func (m *Mesh) finish() {
	slices.SortFunc(m.Services, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	m.byFQDN = make(map[string]*Service, len(m.Services))
	for _, s := range m.Services {
		slices.SortFunc(s.Ports, func(a, b *Port) int { return cmp.Compare(a.Number, b.Number) })
		for _, p := range s.Ports {
			slices.SortFunc(p.Endpoints, func(a, b Endpoint) int {
				return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.NodeID, b.NodeID))
			})
			p.Endpoints = slices.CompactFunc(p.Endpoints, func(a, b Endpoint) bool { return a.Address == b.Address })
			if p.Endpoints == nil {
				p.Endpoints = []Endpoint{}
			}
		}
		s.DefaultPort = defaultPort(s.Ports)
		m.byFQDN[s.FQDN] = s
	}
}

// defaultPort is 80 if it is an HTTP-family port, else the only HTTP-family port,
// else 0. A TCP port is never a default: a host name routes HTTP requests only.
func defaultPort(ports []*Port) uint32 {
	var only uint32
	n := 0
	for _, p := range ports {
		if !IsHTTP(p.Protocol) {
			continue
		}
		if p.Number == 80 {
			return 80
		}
		only = p.Number
		n++
	}
	if n == 1 {
		return only
	}
	return 0
}

package model

import (
	"cmp"
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// DiscoveredEndpoint is an endpoint of a service that service discovery reports (a
// ready address of a Kubernetes EndpointSlice), as opposed to a sidecar that
// registered over xDS. In Kubernetes the sidecar intercepts the pod's inbound traffic
// transparently, so the endpoint's address is the pod's own IP and target port.
type DiscoveredEndpoint struct {
	// Service and Namespace name the service the endpoint belongs to.
	Service   string `json:"service"`
	Namespace string `json:"namespace"`
	// Port is the number of the service port the endpoint serves.
	Port uint32 `json:"port"`
	// Address is ip:port, where the endpoint accepts the port's traffic.
	Address string `json:"address"`
	// NodeID is the xDS node ID the endpoint's sidecar has or would have
	// (<pod>.<namespace>); empty when the endpoint is not a known pod.
	NodeID string `json:"nodeID,omitempty"`
	// Labels are the pod's labels, which DestinationRule subsets select.
	Labels map[string]string `json:"labels,omitempty"`
	// ServiceAccount is the pod's service account: with the namespace, its identity.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Sidecar says that the pod runs the mesh's sidecar, so it takes part in mutual
	// TLS; without one it is reached in plaintext.
	Sidecar bool `json:"sidecar,omitempty"`
}

// WithEndpoints adds endpoints known from service discovery to the services they
// name (a service or port that does not exist is ignored: discovery and configuration
// are not updated atomically).
func WithEndpoints(eps []DiscoveredEndpoint) Option {
	return func(o *options) { o.discovered = eps }
}

// addDiscoveredEndpoints adds the endpoints of WithEndpoints to their services'
// ports, with the pod's identity and the mTLS mode of its port.
func (b *builder) addDiscoveredEndpoints() {
	for _, ep := range b.opts.discovered {
		ns := namespaceOr(ep.Namespace)
		s := b.byKey[key(ns, ep.Service)]
		if s == nil {
			continue
		}
		p := s.Port(ep.Port)
		if p == nil {
			continue
		}
		mode := MTLSDisable
		if ep.Sidecar {
			mode = b.mesh.MTLSMode(ns, ep.Labels, targetPortOf(ep.Address))
		}
		p.Endpoints = append(p.Endpoints, Endpoint{
			Address:  ep.Address,
			NodeID:   ep.NodeID,
			Identity: b.mesh.Identity(ns, ep.ServiceAccount),
			MTLS:     mode,
			Labels:   ep.Labels,
		})
		b.addPodInbound(ep, p)
	}
}

// addPodInbound records the endpoint's address as an inbound port of its pod's
// sidecar: the pod's target port, with the protocol of the service port that reaches
// it (the first one, by the order of discovery, when several do).
func (b *builder) addPodInbound(ep DiscoveredEndpoint, p *Port) {
	target := targetPortOf(ep.Address)
	if ep.NodeID == "" || !ep.Sidecar || target == 0 {
		return
	}
	if b.mesh.podInbound == nil {
		b.mesh.podInbound = make(map[string][]InboundPort)
		b.mesh.podLabels = make(map[string]map[string]string)
	}
	if ep.Labels != nil {
		b.mesh.podLabels[ep.NodeID] = ep.Labels
	}
	for _, in := range b.mesh.podInbound[ep.NodeID] {
		if in.Inbound == ep.Address {
			return
		}
	}
	b.mesh.podInbound[ep.NodeID] = append(b.mesh.podInbound[ep.NodeID], InboundPort{
		Name:     p.Name,
		Port:     target,
		Protocol: p.Protocol,
		Target:   net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(target), 10)),
		Inbound:  ep.Address,
	})
}

// AddPodInbound gives a sidecar that announces its pod IP (bootstrap.Metadata.PodIP)
// and declares no ports the inbound ports service discovery lists for its pod at that
// IP: an inbound listener on <pod IP>:<target port> forwarding to 127.0.0.1:<target
// port>, which is where the other sidecars' endpoints for the pod point. Addresses at
// another IP (a pod recreated under the same name) are left out. A sidecar that
// announces no labels gets the pod's, so that its inbound ports take the mutual TLS
// mode its clients use toward it.
func (m *Mesh) AddPodInbound(p *Proxy, podIP string) {
	if podIP == "" || len(p.Inbound) > 0 {
		return
	}
	for _, in := range m.podInbound[p.ID] {
		if host, _, err := net.SplitHostPort(in.Inbound); err == nil && host == podIP {
			p.Inbound = append(p.Inbound, in)
		}
	}
	if len(p.Inbound) > 0 && len(p.Labels) == 0 {
		p.Labels = m.podLabels[p.ID]
	}
	slices.SortFunc(p.Inbound, func(a, b InboundPort) int { return cmp.Compare(a.Port, b.Port) })
}

// targetPortOf is the port of host:port, or 0.
func targetPortOf(addr string) uint32 {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(port, 10, 16)
	return uint32(n)
}

// serviceAddresses are a Service's cluster IPs; none for a headless Service.
func serviceAddresses(spec corev1.ServiceSpec) []string {
	var out []string
	for _, ip := range spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	if len(out) == 0 && spec.ClusterIP != "" && spec.ClusterIP != corev1.ClusterIPNone {
		out = append(out, spec.ClusterIP)
	}
	return out
}

package model

import (
	"net"
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
	}
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

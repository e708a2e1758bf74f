package model

import (
	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/registry"
)

// Proxy is what the generator needs to know about one sidecar: where its listeners go
// and which namespace it resolves names from.
type Proxy struct {
	// ID is the xDS node ID.
	ID        string `json:"id"`
	Workload  string `json:"workload"`
	Namespace string `json:"namespace"`
	// Labels are the workload's labels, which sourceLabels of routes select.
	Labels map[string]string `json:"labels,omitempty"`
	// ServiceAccount is the workload's service account ("default" if empty): with the
	// namespace and the trust domain, its SPIFFE ID (Mesh.Identity).
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Inbound are the workload's ports, as the sidecar serves them.
	Inbound []InboundPort `json:"inbound,omitempty"`
	// Outbound is the address of the outbound listener; empty: none.
	Outbound string `json:"outbound,omitempty"`
	// Upstreams are local TCP binds forwarding to a service port.
	Upstreams []bootstrap.Upstream `json:"upstreams,omitempty"`
	// MTLS is true when the sidecar takes part in mutual TLS (bootstrap.Metadata.MTLS):
	// only then does it get TLS filter chains, transport sockets and secrets.
	MTLS bool `json:"mtls,omitempty"`
	// Authz is true when the sidecar implements authorization
	// (bootstrap.Metadata.Authz): only then does it get RBAC, jwt_authn and ext_authz
	// filters and path normalization; toward the others the generator fails closed.
	Authz bool `json:"authz,omitempty"`
	// Transparent is true when the sidecar's traffic is intercepted
	// (bootstrap.Metadata.Mode "transparent"); RegistryOnly when, then, connections to
	// unknown destinations are refused rather than passed through.
	Transparent  bool `json:"transparent,omitempty"`
	RegistryOnly bool `json:"registryOnly,omitempty"`
}

// InboundPort is one workload port: the sidecar listens on Inbound and forwards to
// the app on Target.
type InboundPort struct {
	Name     string            `json:"name,omitempty"`
	Port     uint32            `json:"port"`
	Protocol v1alpha1.Protocol `json:"protocol"`
	Target   string            `json:"target"`
	Inbound  string            `json:"inbound"`
}

// NewProxy builds the proxy view of a registered instance.
func NewProxy(inst registry.Instance) *Proxy {
	md := inst.Metadata
	p := &Proxy{
		ID:             inst.NodeID,
		Workload:       md.Workload,
		Namespace:      namespaceOr(md.Namespace),
		Labels:         md.Labels,
		ServiceAccount: md.ServiceAccount,
		Outbound:       md.Outbound,
		Upstreams:      append([]bootstrap.Upstream(nil), md.Upstreams...),
		MTLS:           md.MTLS,
		Authz:          md.Authz,
		Transparent:    md.Mode == bootstrap.ModeTransparent,
		RegistryOnly:   md.Mode == bootstrap.ModeTransparent && md.OutboundTrafficPolicy == "REGISTRY_ONLY",
	}
	for _, mp := range md.Ports {
		p.Inbound = append(p.Inbound, InboundPort{
			Name:     mp.Name,
			Port:     mp.Port,
			Protocol: protocolOf(mp.Protocol),
			Target:   mp.Target,
			Inbound:  mp.Inbound,
		})
	}
	return p
}

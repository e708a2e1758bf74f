package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GroupVersion is the apiVersion of every kind in this package.
const GroupVersion = "trellis.dev/v1alpha1"

// KindWorkload is the kind of Workload documents.
const KindWorkload = "Workload"

// Workload is one workload in local mode: an app command, the service it serves and the
// sidecar that carries its traffic. It plays the part a Pod plays in Kubernetes.
type Workload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              WorkloadSpec `json:"spec"`
}

// WorkloadSpec describes a workload's app and how the mesh reaches it.
type WorkloadSpec struct {
	// Service is the name of the service this workload serves, in the workload's
	// namespace. Empty for a client-only workload.
	Service string `json:"service,omitempty"`
	// ServiceAccount names the workload's identity. Default "default".
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Ports are the ports the app serves.
	Ports []WorkloadPort `json:"ports,omitempty"`
	// Command is the app's command line. $(VAR) expands from the app's environment as
	// in Kubernetes ($$(VAR) stays literal). Empty: no app process, sidecar only.
	Command []string `json:"command,omitempty"`
	// Env is added to the app's environment.
	Env map[string]string `json:"env,omitempty"`
	// Outbound is a fixed address for the sidecar's outbound listener; empty picks a
	// free port on 127.0.0.1.
	Outbound string `json:"outbound,omitempty"`
	// Upstreams bind fixed local addresses that forward, over the mesh, to a service
	// port: the way an app reaches a plain TCP service.
	Upstreams []Upstream `json:"upstreams,omitempty"`
	// DrainPeriod is how long the sidecar keeps accepting, with Connection: close,
	// after it gets SIGTERM, before it stops accepting; requests in flight then have as
	// long again to finish (a Go duration such as "5s"; the sidecar's drainPeriod,
	// docs/proxy.md "Shutdown"). Empty: 5s.
	DrainPeriod string `json:"drainPeriod,omitempty"`
}

// Protocol is the application protocol of a port.
type Protocol string

// The protocols a port may declare.
const (
	ProtocolHTTP  Protocol = "HTTP"
	ProtocolHTTP2 Protocol = "HTTP2"
	ProtocolGRPC  Protocol = "GRPC"
	ProtocolTCP   Protocol = "TCP"
	// ProtocolAuto is not declared by users: it is the protocol of a Service port
	// that declares none (no appProtocol, no protocol name prefix). The sidecar
	// detects HTTP/1.1 and HTTP/2 on such a port and carries anything else as TCP.
	ProtocolAuto Protocol = "AUTO"
)

// WorkloadPort is one port the app serves.
type WorkloadPort struct {
	// Name of the port; a Service port with the same name reaches it.
	Name string `json:"name,omitempty"`
	// Port is the port clients call: http://service:port.
	Port int32 `json:"port"`
	// TargetPort is where the app listens on 127.0.0.1. Zero: a free port is chosen and
	// given to the app as $PORT (the first port) and $PORT_<NAME>.
	TargetPort int32 `json:"targetPort,omitempty"`
	// Protocol is HTTP, HTTP2, GRPC or TCP. Default HTTP.
	Protocol Protocol `json:"protocol,omitempty"`
}

// Upstream binds a local address that forwards to a service port through the mesh.
type Upstream struct {
	// Service is the service, resolved from the workload's namespace as Istio resolves
	// hosts: `name`, `name.namespace`, `name.namespace.svc`, the FQDN, or a
	// ServiceEntry host.
	Service string `json:"service"`
	// Port is the service port.
	Port int32 `json:"port"`
	// Bind is the local address to listen on, such as 127.0.0.1:19000.
	Bind string `json:"bind"`
}

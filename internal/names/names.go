package names

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultDomain is the cluster DNS domain that service hostnames end with.
const DefaultDomain = "cluster.local"

// DefaultNamespace is the namespace of a resource that names none.
const DefaultNamespace = "default"

// ServiceFQDN is the fully qualified hostname of a service:
// <name>.<namespace>.svc.cluster.local.
func ServiceFQDN(name, namespace string) string {
	return name + "." + namespace + ".svc." + DefaultDomain
}

// HostAliases lists the names by which a client in clientNamespace reaches a service,
// longest first: name.ns.svc.cluster.local, name.ns.svc, name.ns, and the bare name
// when the client is in the service's namespace.
func HostAliases(name, namespace, clientNamespace string) []string {
	aliases := []string{
		ServiceFQDN(name, namespace),
		name + "." + namespace + ".svc",
		name + "." + namespace,
	}
	if namespace == clientNamespace {
		aliases = append(aliases, name)
	}
	return aliases
}

// OutboundCluster names the cluster of a service port: outbound|<port>||<fqdn>.
func OutboundCluster(fqdn string, port uint32) string {
	return fmt.Sprintf("outbound|%d||%s", port, fqdn)
}

// InboundCluster names the cluster that reaches the local app behind a service port.
func InboundCluster(port uint32) string {
	return fmt.Sprintf("inbound|%d||", port)
}

// InboundListener names the inbound listener of a workload port.
func InboundListener(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10)
}

// OutboundListener is the name of a sidecar's outbound HTTP listener.
const OutboundListener = "outbound"

// OutboundRoute is the name of the route configuration of the outbound listener.
const OutboundRoute = "outbound"

// UpstreamListener names a listener bound for a workload's TCP upstream.
func UpstreamListener(fqdn string, port uint32) string {
	return fmt.Sprintf("upstream|%s|%d", fqdn, port)
}

// ParseOutboundCluster splits an outbound cluster name into its hostname and port.
func ParseOutboundCluster(name string) (fqdn string, port uint32, err error) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return "", 0, fmt.Errorf("cluster name %q is not outbound|<port>|<subset>|<host>", name)
	}
	p, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("cluster name %q: port: %w", name, err)
	}
	return parts[3], uint32(p), nil
}

// SDS secret names (docs/xds.md, "Security").
const (
	// WorkloadSecret is the sidecar's own certificate and key: the sidecar provides it
	// itself (the key never leaves it); the control plane only refers to it.
	WorkloadSecret = "default"
	// RootCASecret is the trust bundle the control plane sends over SDS.
	RootCASecret = "ROOTCA"
)

// UpstreamSNI is the SNI a client sidecar sends to a cluster's endpoints: the cluster
// name outbound|<port>|<subset>|<fqdn> spelled with DNS-safe separators,
// outbound_.<port>_.<subset>_.<fqdn>.
func UpstreamSNI(fqdn string, port uint32, subset string) string {
	return fmt.Sprintf("outbound_.%d_.%s_.%s", port, subset, fqdn)
}

// Proxyless gRPC (docs/proxyless.md). A gRPC server started with an xDS bootstrap
// asks for the listener GRPCServerListener(<its listening address>), as the
// bootstrap's server_listener_resource_name_template says; the TLS contexts name
// the certificate provider instance GRPCCertProvider of the bootstrap.
const (
	GRPCServerListenerTemplate = "grpc/server?xds.resource.listening_address=%s"
	GRPCCertProvider           = "trellis"
)

// GRPCServerListener is the listener a proxyless gRPC server listening on addr
// (host:port) asks for.
func GRPCServerListener(addr string) string {
	return strings.Replace(GRPCServerListenerTemplate, "%s", addr, 1)
}

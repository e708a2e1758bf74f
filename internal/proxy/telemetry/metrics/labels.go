package metrics

import (
	"net"
	"strconv"
	"strings"

	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// Label names, in the order of every label-value list: Istio's standard labels.
var httpLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
}

// tcpLabels are httpLabels without response_code and grpc_response_status.
var tcpLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"request_protocol", "response_flags", "connection_security_policy",
}

// Label values with a fixed meaning.
const (
	unknown        = "unknown"
	other          = "other"
	reporterSource = "source"
	reporterDest   = "destination"
	policyMTLS     = "mutual_tls"
	policyNone     = "none"
)

// common is what both families' label values share.
type common struct {
	inbound  bool
	src, dst *reqinfo.Peer
	// service is the destination service's FQDN, its short name and namespace.
	service, serviceName, serviceNS string
	protocol                        string
	flags                           string
	policy                          string
}

func (c *common) values(code, grpc string, withCodes bool) []string {
	reporter := reporterSource
	if c.inbound {
		reporter = reporterDest
	}
	v := make([]string, 0, len(httpLabels))
	v = append(v, reporter)
	v = appendPeer(v, c.src)
	v = appendPeer(v, c.dst)
	v = append(v, c.service, c.serviceName, c.serviceNS, c.protocol)
	if withCodes {
		v = append(v, code, grpc)
	}
	return append(v, c.flags, c.policy)
}

func appendPeer(v []string, p *reqinfo.Peer) []string {
	if p == nil {
		p = &reqinfo.Peer{}
	}
	return append(v, orUnknown(p.Workload), orUnknown(p.Namespace), orUnknown(p.Principal),
		orUnknown(p.App), orUnknown(p.Version))
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// overflowValues is the label set that requests past the cardinality bound go to.
func overflowValues(inbound bool, protocol string, withCodes bool) []string {
	n := len(tcpLabels)
	if withCodes {
		n = len(httpLabels)
	}
	v := make([]string, n)
	for i := range v {
		v[i] = other
	}
	v[0] = reporterSource
	if inbound {
		v[0] = reporterDest
	}
	v[14] = protocol // request_protocol, the same position in both lists
	return v
}

// serviceOfCluster is the destination service of an outbound cluster
// (outbound|<port>|<subset>|<fqdn>): its FQDN, name and namespace.
func serviceOfCluster(cluster string) (fqdn, name, ns string) {
	fqdn, _, err := names.ParseOutboundCluster(cluster)
	if err != nil || fqdn == "" {
		return unknown, unknown, unknown
	}
	name, ns = splitFQDN(fqdn)
	return fqdn, name, ns
}

// splitFQDN gives the name and namespace of <name>.<namespace>.svc.<domain>; another
// host (a ServiceEntry's) is its own name, in an unknown namespace.
func splitFQDN(fqdn string) (name, ns string) {
	suffix := ".svc." + names.DefaultDomain
	if rest, ok := strings.CutSuffix(fqdn, suffix); ok {
		if name, ns, ok := strings.Cut(rest, "."); ok && !strings.Contains(ns, ".") {
			return name, ns
		}
	}
	return fqdn, unknown
}

// serviceOfAuthority is the destination service of an inbound request: the service
// its Host names as Kubernetes resolves it from namespace (name, name.ns, name.ns.svc,
// name.ns.svc.<domain>, with or without a port), else fallback (the workload's own
// service; "" for unknown).
func serviceOfAuthority(authority, namespace, fallback string) (fqdn, name, ns string) {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	labels := strings.Split(host, ".")
	switch {
	case host == "" || host == "localhost" || net.ParseIP(host) != nil || !validLabels(labels):
	case len(labels) == 1:
		return names.ServiceFQDN(labels[0], namespace), labels[0], namespace
	case len(labels) == 2 || len(labels) == 3 && labels[2] == "svc":
		return names.ServiceFQDN(labels[0], labels[1]), labels[0], labels[1]
	case strings.HasSuffix(host, ".svc."+names.DefaultDomain) && len(labels) == 5:
		return host, labels[0], labels[1]
	}
	if fallback == "" {
		return unknown, unknown, unknown
	}
	name, ns = splitFQDN(fallback)
	return fallback, name, ns
}

// validLabels reports whether every label is a DNS label (letters, digits, '-').
func validLabels(labels []string) bool {
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := range len(l) {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func codeString(code int) string {
	if code == 0 {
		return "0"
	}
	return strconv.Itoa(code)
}

func grpcString(isGRPC bool, status int) string {
	if !isGRPC || status < 0 {
		return ""
	}
	return strconv.Itoa(status)
}

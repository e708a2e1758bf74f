package model

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
)

// objectRef names a document for messages.
func objectRef(kind string, m *metav1.ObjectMeta, pos config.Position) config.ObjectRef {
	return config.ObjectRef{Kind: kind, Namespace: namespaceOr(m.Namespace), Name: m.Name, Pos: pos}
}

// configErrorf records that part of a traffic document could not be applied.
func (b *builder) configErrorf(obj config.ObjectRef, field, format string, args ...any) {
	e := newError(obj, field, format, args...)
	if k := e.Error(); !b.reported[k] {
		b.reported[k] = true
		b.mesh.ConfigErrors = append(b.mesh.ConfigErrors, e)
	}
}

// addServiceEntry adds one service per host of a ServiceEntry. A host that is
// already a service is reported and skipped.
func (b *builder) addServiceEntry(se config.ServiceEntry) {
	obj := objectRef("ServiceEntry", &se.ObjectMeta, se.Pos)
	spec := &se.Spec
	ns := namespaceOr(se.Namespace)
	for i, host := range spec.GetHosts() {
		field := "spec.hosts[" + strconv.Itoa(i) + "]"
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if strings.Contains(host, "*") {
			b.configErrorf(obj, field, "wildcard host %q is not supported: name each host; the host is skipped", host)
			continue
		}
		if other := b.findFQDN(host); other != nil {
			b.configErrorf(obj, field, "host %q is already a service (%s %s/%s); the host is skipped", host, other.Origin, other.Namespace, other.Name)
			continue
		}
		s := &Service{
			Name:      host,
			Namespace: ns,
			FQDN:      host,
			Origin:    OriginServiceEntry,
			Source:    se.Pos.String(),
			External:  spec.GetLocation() != networkingapi.ServiceEntry_MESH_INTERNAL,
			// The identities its endpoints present, for a DestinationRule's ISTIO_MUTUAL.
			SubjectAltNames: spec.GetSubjectAltNames(),
			ExportTo:        exportTo(spec.GetExportTo(), ns),
		}
		if spec.GetResolution() != networkingapi.ServiceEntry_STATIC {
			// DNS and DNS_ROUND_ROBIN resolve the endpoints' names (or the host); NONE
			// forwards to the address the client asked for, which for a sidecar
			// reached as an HTTP proxy is the host name: the same.
			s.Resolution = ResolutionDNS
		}
		for j, p := range spec.GetPorts() {
			port := &Port{Name: p.GetName(), Number: p.GetNumber(), Protocol: serviceEntryProtocol(p)}
			port.Endpoints = b.serviceEntryEndpoints(obj, spec, host, p, j)
			s.Ports = append(s.Ports, port)
		}
		b.byKey[key(ns, host)] = s
		b.mesh.Services = append(b.mesh.Services, s)
	}
}

// findFQDN finds a service by FQDN before the mesh is indexed.
func (b *builder) findFQDN(fqdn string) *Service {
	for _, s := range b.mesh.Services {
		if s.FQDN == fqdn {
			return s
		}
	}
	return nil
}

// serviceEntryProtocol maps a ServiceEntry port protocol to a Trellis protocol the
// way a Service's appProtocol is: HTTP, HTTP2 and GRPC are routed by request;
// everything else (TCP, TLS, HTTPS, MONGO, ...) is carried as bytes. No protocol:
// from the port name (http-..., grpc-...), else TCP.
func serviceEntryProtocol(p *networkingapi.ServicePort) v1alpha1.Protocol {
	sp := corev1.ServicePort{Name: p.GetName()}
	if proto := strings.ToLower(p.GetProtocol()); proto != "" {
		sp.AppProtocol = &proto
	}
	return config.ServicePortProtocol(sp)
}

// serviceEntryEndpoints lists the endpoints of one port of a ServiceEntry host: for
// STATIC resolution the endpoints' addresses, for DNS their host names or, without
// endpoints, the host itself. The port of an endpoint is its ports[<port name>],
// else the port's targetPort, else the port's number.
func (b *builder) serviceEntryEndpoints(obj config.ObjectRef, spec *networkingapi.ServiceEntry, host string, p *networkingapi.ServicePort, portIndex int) []Endpoint {
	target := cmp.Or(p.GetTargetPort(), p.GetNumber())
	static := spec.GetResolution() == networkingapi.ServiceEntry_STATIC
	if len(spec.GetEndpoints()) == 0 {
		if static {
			return nil // STATIC without endpoints: a service nobody serves (503)
		}
		return []Endpoint{{Address: net.JoinHostPort(host, strconv.FormatUint(uint64(target), 10))}}
	}
	var out []Endpoint
	for i, ep := range spec.GetEndpoints() {
		addr := ep.GetAddress()
		field := "spec.endpoints[" + strconv.Itoa(i) + "].address"
		switch {
		case addr == "":
			if portIndex == 0 {
				b.configErrorf(obj, field, "required: an endpoint needs an address; the endpoint is skipped")
			}
			continue
		case strings.HasPrefix(addr, "unix://"):
			if portIndex == 0 {
				b.configErrorf(obj, field, "unix socket endpoints are not supported; the endpoint is skipped")
			}
			continue
		case static && net.ParseIP(addr) == nil:
			if portIndex == 0 {
				b.configErrorf(obj, field, "%q is not an IP address, which STATIC resolution needs (use resolution: DNS for host names); the endpoint is skipped", addr)
			}
			continue
		}
		number := target
		if n, ok := ep.GetPorts()[p.GetName()]; ok && n != 0 {
			number = n
		}
		e := Endpoint{Address: net.JoinHostPort(addr, strconv.FormatUint(uint64(number), 10)), Labels: ep.GetLabels()}
		if sa := ep.GetServiceAccount(); sa != "" {
			e.Identity = b.mesh.Identity(obj.Namespace, sa)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

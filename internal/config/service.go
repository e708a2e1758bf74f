package config

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

func decodeService(d *document) {
	s := &corev1.Service{}
	if !d.decode(s) {
		return
	}
	defaultService(s)
	validateService(d, s)
	d.set.Services = append(d.set.Services, Service{Pos: d.pos(), Service: s})
}

// defaultService applies the defaults the Kubernetes API server applies to the fields
// Trellis reads: port protocol TCP, targetPort the port.
func defaultService(s *corev1.Service) {
	defaultMeta(&s.ObjectMeta)
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
}

func validateService(d *document, s *corev1.Service) {
	validateMeta(d, &s.ObjectMeta, serviceName)
	if v, ok := s.Annotations[ExportToAnnotation]; ok {
		validateExportTo(d, field("metadata", "annotations").key(ExportToAnnotation), ExportToList(v))
	}
	spec := field("spec")
	if len(s.Spec.Selector) == 0 {
		d.errorf(spec.key("selector"), "required: selector-less Services are not supported in local mode "+
			"(a Service's endpoints are the Workloads its selector matches)")
	}
	validateLabels(d, spec.key("selector"), s.Spec.Selector)
	if len(s.Spec.Ports) == 0 {
		d.errorf(spec.key("ports"), "required: a Service needs at least one port")
	}
	byName, byPort := map[string]int{}, map[int32]int{}
	for i, port := range s.Spec.Ports {
		p := spec.key("ports").index(i)
		switch {
		case port.Name == "" && len(s.Spec.Ports) > 1:
			d.errorf(p.key("name"), "required when a Service has more than one port")
		case port.Name != "":
			checkAll(d, p.key("name"), utilvalidation.IsDNS1123Label(port.Name))
			if first, dup := byName[port.Name]; dup {
				d.errorf(p.key("name"), "duplicate port name %q (also ports[%d])", port.Name, first)
			}
			byName[port.Name] = i
		}
		validatePort(d, p.key("port"), port.Port)
		if first, dup := byPort[port.Port]; dup && port.Port != 0 {
			d.errorf(p.key("port"), "duplicate port %d (also ports[%d])", port.Port, first)
		}
		byPort[port.Port] = i
		if port.Protocol != corev1.ProtocolTCP {
			d.errorf(p.key("protocol"), "protocol %s is not supported: the mesh carries TCP (and HTTP, gRPC over it)", port.Protocol)
		}
		switch t := port.TargetPort; t.Type {
		case intstr.Int:
			if t.IntVal < 0 || t.IntVal > 65535 {
				d.errorf(p.key("targetPort"), "port %d is out of range 0..65535", t.IntVal)
			}
		case intstr.String:
			checkAll(d, p.key("targetPort"), utilvalidation.IsValidPortName(t.StrVal))
		}
	}
}

// ServicePortProtocol is the application protocol of a Service port, as Istio reads it:
// a known appProtocol (http, http2, grpc, kubernetes.io/h2c, tcp), else the port name
// ("http", "http2", "grpc", "tcp", or one of them followed by "-" and anything), else TCP.
// ServicePortProtocolOrAuto tells the last case apart.
func ServicePortProtocol(p corev1.ServicePort) v1alpha1.Protocol {
	if proto := ServicePortProtocolOrAuto(p); proto != v1alpha1.ProtocolAuto {
		return proto
	}
	return v1alpha1.ProtocolTCP
}

// ServicePortProtocolOrAuto is ServicePortProtocol, except that a port declaring no
// protocol (no known appProtocol, no known name prefix) is v1alpha1.ProtocolAuto: its
// protocol is detected per connection (HTTP/1.1, HTTP/2, else TCP).
func ServicePortProtocolOrAuto(p corev1.ServicePort) v1alpha1.Protocol {
	if p.AppProtocol != nil {
		switch strings.ToLower(*p.AppProtocol) {
		case "http":
			return v1alpha1.ProtocolHTTP
		case "http2", "kubernetes.io/h2c":
			return v1alpha1.ProtocolHTTP2
		case "grpc":
			return v1alpha1.ProtocolGRPC
		case "tcp":
			return v1alpha1.ProtocolTCP
		}
	}
	prefix, _, _ := strings.Cut(strings.ToLower(p.Name), "-")
	switch prefix {
	case "http":
		return v1alpha1.ProtocolHTTP
	case "http2":
		return v1alpha1.ProtocolHTTP2
	case "grpc":
		return v1alpha1.ProtocolGRPC
	case "tcp":
		return v1alpha1.ProtocolTCP
	}
	return v1alpha1.ProtocolAuto
}

package config

import (
	"maps"
	"slices"
	"strings"
	"time"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// DefaultServiceAccount is the identity of a Workload that names none.
const DefaultServiceAccount = "default"

func decodeWorkload(d *document) {
	w := &v1alpha1.Workload{}
	if !d.decode(w) {
		return
	}
	defaultWorkload(w)
	validateWorkload(d, w)
	d.set.Workloads = append(d.set.Workloads, Workload{Pos: d.pos(), Workload: w})
}

func defaultWorkload(w *v1alpha1.Workload) {
	defaultMeta(&w.ObjectMeta)
	if w.Spec.ServiceAccount == "" {
		w.Spec.ServiceAccount = DefaultServiceAccount
	}
	for i := range w.Spec.Ports {
		p := &w.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = v1alpha1.ProtocolHTTP
		} else if known, ok := parseProtocol(string(p.Protocol)); ok {
			p.Protocol = known
		}
	}
}

// parseProtocol accepts a Workload port protocol in any case.
func parseProtocol(s string) (v1alpha1.Protocol, bool) {
	p := v1alpha1.Protocol(strings.ToUpper(s))
	switch p {
	case v1alpha1.ProtocolHTTP, v1alpha1.ProtocolHTTP2, v1alpha1.ProtocolGRPC, v1alpha1.ProtocolTCP:
		return p, true
	}
	return "", false
}

func validateWorkload(d *document, w *v1alpha1.Workload) {
	validateMeta(d, &w.ObjectMeta, dnsLabel)
	spec := field("spec")
	if w.Spec.Service != "" {
		checkAll(d, spec.key("service"), serviceName(w.Spec.Service))
	}
	checkAll(d, spec.key("serviceAccount"), utilvalidation.IsDNS1123Subdomain(w.Spec.ServiceAccount))
	validateWorkloadPorts(d, w.Spec.Ports)
	for _, k := range sortedKeys(w.Spec.Env) {
		checkAll(d, spec.key("env").key(k), utilvalidation.IsEnvVarName(k))
	}
	if w.Spec.Outbound != "" {
		validateHostPort(d, spec.key("outbound"), w.Spec.Outbound)
	}
	if w.Spec.DrainPeriod != "" {
		if p, err := time.ParseDuration(w.Spec.DrainPeriod); err != nil || p <= 0 {
			d.errorf(spec.key("drainPeriod"), "%q is not a positive duration such as 5s", w.Spec.DrainPeriod)
		}
	}
	binds := map[string]int{}
	for i, u := range w.Spec.Upstreams {
		p := spec.key("upstreams").index(i)
		if u.Service == "" {
			d.errorf(p.key("service"), "required")
		} else {
			checkAll(d, p.key("service"), upstreamService(u.Service))
		}
		validatePort(d, p.key("port"), u.Port)
		if u.Bind == "" {
			d.errorf(p.key("bind"), "required: the local host:port to listen on, such as 127.0.0.1:19000")
			continue
		}
		validateHostPort(d, p.key("bind"), u.Bind)
		if first, dup := binds[u.Bind]; dup {
			d.errorf(p.key("bind"), "%s is already bound by upstreams[%d]", u.Bind, first)
		}
		binds[u.Bind] = i
	}
}

// upstreamService checks the service of an upstream: a host name resolved as Istio
// resolves hosts from the workload's namespace. `name`, `name.namespace` and
// `name.namespace.svc` name a Service (a DNS-1035 label, then a namespace); anything
// longer, such as `name.namespace.svc.cluster.local` or a ServiceEntry host, must be
// a DNS-1123 subdomain. Case and a trailing dot do not matter.
func upstreamService(s string) []string {
	host := strings.TrimSuffix(strings.ToLower(s), ".")
	parts := strings.Split(host, ".")
	switch {
	case len(parts) == 1:
		return serviceName(host)
	case len(parts) == 2 || len(parts) == 3 && parts[2] == "svc":
		return append(serviceName(parts[0]), prefixAll("namespace: ", dnsLabel(parts[1]))...)
	}
	return utilvalidation.IsDNS1123Subdomain(host)
}

// prefixAll puts prefix before each message.
func prefixAll(prefix string, msgs []string) []string {
	for i, m := range msgs {
		msgs[i] = prefix + m
	}
	return msgs
}

func validateWorkloadPorts(d *document, ports []v1alpha1.WorkloadPort) {
	byName, byPort, byTarget := map[string]int{}, map[int32]int{}, map[int32]int{}
	for i, port := range ports {
		p := field("spec", "ports", i)
		if port.Name != "" {
			checkAll(d, p.key("name"), utilvalidation.IsValidPortName(port.Name))
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
		switch t := port.TargetPort; {
		case t < 0 || t > 65535:
			d.errorf(p.key("targetPort"), "port %d is out of range 0..65535 (0 chooses a free port)", t)
		case t != 0:
			if first, dup := byTarget[t]; dup {
				d.errorf(p.key("targetPort"), "duplicate targetPort %d (also ports[%d])", t, first)
			}
			byTarget[t] = i
		}
		if _, ok := parseProtocol(string(port.Protocol)); !ok {
			d.errorf(p.key("protocol"), "unknown protocol %q: use HTTP, HTTP2, GRPC or TCP", port.Protocol)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

package config

import (
	"net"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"trellis.dev/trellis/internal/names"
)

// defaultMeta applies the defaults every kind shares.
func defaultMeta(m *metav1.ObjectMeta) {
	if m.Namespace == "" {
		m.Namespace = names.DefaultNamespace
	}
}

// validateMeta checks metadata: name (with nameCheck, DNS-1123 or DNS-1035 label),
// namespace and labels.
func validateMeta(d *document, m *metav1.ObjectMeta, nameCheck func(string) []string) {
	if m.Name == "" {
		d.errorf(field("metadata", "name"), "required")
	} else {
		checkAll(d, field("metadata", "name"), nameCheck(m.Name))
	}
	checkAll(d, field("metadata", "namespace"), utilvalidation.IsDNS1123Label(m.Namespace))
	validateLabels(d, field("metadata", "labels"), m.Labels)
}

// validateLabels checks label keys and values, as metadata.labels and selectors hold them.
func validateLabels(d *document, p fieldPath, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		checkAll(d, p.key(k), utilvalidation.IsQualifiedName(k))
		checkAll(d, p.key(k), utilvalidation.IsValidLabelValue(labels[k]))
	}
}

// checkAll reports each message of a Kubernetes validation function at p.
func checkAll(d *document, p fieldPath, msgs []string) {
	for _, m := range msgs {
		d.errorf(p, "%s", m)
	}
}

// validatePort checks a port number that must be set: 1..65535.
func validatePort(d *document, p fieldPath, port int32) {
	switch {
	case port == 0:
		d.errorf(p, "required")
	case port < 1 || port > 65535:
		d.errorf(p, "port %d is out of range 1..65535", port)
	}
}

// validateHostPort checks an address such as 127.0.0.1:15101.
func validateHostPort(d *document, p fieldPath, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		d.errorf(p, "%q is not a host:port address: %s", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
		return
	}
	if host == "" {
		d.errorf(p, "%q has no host; write one, such as 127.0.0.1%s", addr, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		d.errorf(p, "%q: port %q is not a number in 1..65535", addr, port)
	}
}

// dnsLabel and serviceName are the name rules of Workloads (like Pods) and Services.
var (
	dnsLabel    = utilvalidation.IsDNS1123Label
	serviceName = func(s string) []string { return validation.NameIsDNS1035Label(s, false) }
)

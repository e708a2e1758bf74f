package config

import (
	"strings"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// ExportToAnnotation is the annotation of a Kubernetes Service that limits the
// namespaces it is visible from, as Istio reads it: a comma-separated list of ".",
// "*" and namespace names.
const ExportToAnnotation = "networking.istio.io/exportTo"

// ExportToList splits the value of ExportToAnnotation.
func ExportToList(annotation string) []string {
	var out []string
	for _, v := range strings.Split(annotation, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// validateExportTo checks an exportTo list: ".", "*" or namespace names.
func validateExportTo(d *document, p fieldPath, values []string) {
	for i, v := range values {
		switch {
		case v == "." || v == "*":
		case v == "~":
			d.errorf(p.index(i), `"~" (visible to no namespace) is not supported: remove the resource instead`)
		default:
			for _, m := range utilvalidation.IsDNS1123Label(v) {
				d.errorf(p.index(i), "%q is not \".\", \"*\" or a namespace name: %s", v, m)
			}
		}
	}
}

// validateSidecar checks the fields of a Sidecar that Trellis reads: the egress
// hosts ("namespace/host", the namespace ".", "*" or a name, the host "*", "*.suffix"
// or a name) and the workload selector's labels.
func validateSidecar(d *document, sc *networkingv1.Sidecar) {
	spec := field("spec")
	validateLabels(d, spec.key("workloadSelector").key("labels"), sc.Spec.GetWorkloadSelector().GetLabels())
	for i, eg := range sc.Spec.GetEgress() {
		p := spec.key("egress").index(i).key("hosts")
		if len(eg.GetHosts()) == 0 {
			d.errorf(p, "required: at least one host, as namespace/host")
		}
		for j, h := range eg.GetHosts() {
			if msg := CheckEgressHost(h); msg != "" {
				d.errorf(p.index(j), "%s", msg)
			}
		}
	}
}

// CheckEgressHost says what is wrong with a Sidecar egress host, or "" if nothing.
func CheckEgressHost(h string) string {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		return "host " + quote(h) + " must be namespace/host, such as \"./*\", \"*/*\" or \"istio-system/*\""
	}
	switch {
	case ns == "." || ns == "*":
	case ns == "~":
		return "host " + quote(h) + ": the namespace \"~\" (no namespace) is not supported"
	default:
		if msgs := utilvalidation.IsDNS1123Label(ns); len(msgs) > 0 {
			return "host " + quote(h) + ": namespace " + quote(ns) + ": " + msgs[0]
		}
	}
	name := strings.TrimPrefix(host, "*.")
	switch {
	case host == "*":
	case host == "" || strings.Contains(name, "*"):
		return "host " + quote(h) + ": the host must be \"*\", \"*.suffix\" or a host name"
	default:
		if msgs := utilvalidation.IsDNS1123Subdomain(strings.ToLower(name)); len(msgs) > 0 {
			return "host " + quote(h) + ": " + msgs[0]
		}
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }

package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUpstreamServiceNames(t *testing.T) {
	tests := []struct {
		name    string
		service string
		want    []string // the errors of the document; none when the name is valid
	}{
		{name: "service", service: "tcp-echo"},
		{name: "service.namespace", service: "tcp-echo.shop"},
		{name: "service.namespace.svc", service: "tcp-echo.shop.svc"},
		{name: "FQDN", service: "tcp-echo.shop.svc.cluster.local"},
		{name: "FQDN with a trailing dot, in any case", service: "TCP-Echo.shop.svc.cluster.local."},
		{name: "ServiceEntry host", service: "db.example.com"},
		{name: "ServiceEntry host with a subdomain", service: "primary.db.example.com"},
		{
			name:    "service not a DNS-1035 label",
			service: "1db",
			want:    []string{`mesh.yaml:9: Workload default/client: spec.upstreams[0].service: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`},
		},
		{
			name:    "bad namespace",
			service: "db.my_ns",
			want:    []string{`mesh.yaml:9: Workload default/client: spec.upstreams[0].service: namespace: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		},
		{
			name:    "not a host name",
			service: "db..example.com",
			want:    []string{`mesh.yaml:9: Workload default/client: spec.upstreams[0].service: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := lines(
				"apiVersion: trellis.dev/v1alpha1", // 1
				"kind: Workload",                   // 2
				"metadata:",                        // 3
				"  name: client",                   // 4
				"spec:",                            // 5
				"  upstreams:",                     // 6
				"  - port: 9000",                   // 7
				"    bind: 127.0.0.1:19000",        // 8
				"    service: "+tt.service,         // 9
			)
			set, err := Parse("mesh.yaml", []byte(src))
			if diff := cmp.Diff(tt.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if err == nil && set.Workloads[0].Workload.Spec.Upstreams[0].Service != tt.service {
				t.Errorf("service = %q, want it kept as written, %q", set.Workloads[0].Workload.Spec.Upstreams[0].Service, tt.service)
			}
		})
	}
}

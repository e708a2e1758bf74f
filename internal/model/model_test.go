package model

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/registry"
)

func parse(t *testing.T, docs ...string) *config.Set {
	t.Helper()
	set, err := config.Parse("mesh.yaml", []byte(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	return set
}

func instance(node, service string, labels map[string]string, ports ...bootstrap.Port) registry.Instance {
	name, ns, _ := strings.Cut(node, ".")
	return registry.Instance{NodeID: node, Metadata: bootstrap.Metadata{
		Workload: name, Namespace: ns, Service: service, Labels: labels, Ports: ports,
	}}
}

func starting(inst registry.Instance) registry.Instance {
	inst.Starting = true
	return inst
}

func port(name string, number uint32, protocol, inbound string) bootstrap.Port {
	return bootstrap.Port{Name: name, Port: number, Protocol: protocol, Inbound: inbound, Target: "127.0.0.1:1"}
}

// summary renders a mesh as "fqdn:port/protocol(default) -> endpoints" lines.
func summary(m *Mesh) []string {
	var out []string
	for _, s := range m.Services {
		for _, p := range s.Ports {
			line := s.FQDN + ":" + strconv.FormatUint(uint64(p.Number), 10) + "/" + string(p.Protocol)
			if p.Number == s.DefaultPort {
				line += "(default)"
			}
			var eps []string
			for _, e := range p.Endpoints {
				eps = append(eps, e.Address)
			}
			out = append(out, line+" -> "+strings.Join(eps, ","))
		}
	}
	return out
}

const serviceDoc = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: main}
  - {name: http-metrics, port: 9090}
  - {name: grpc-api, port: 7070}`

func TestBuild(t *testing.T) {
	tests := []struct {
		name       string
		docs       []string
		instances  []registry.Instance
		want       []string
		wantErrors []string
	}{
		{
			name: "implicit service: ports are the union of the declaring workloads'",
			docs: []string{
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec: {service: s, ports: [{port: 8080}]}",
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: b}\nspec: {service: s, ports: [{port: 8080}, {port: 9000, protocol: TCP}]}",
			},
			instances: []registry.Instance{
				instance("a.default", "s", nil, port("", 8080, "HTTP", "127.0.0.1:2001")),
				instance("b.default", "s", nil, port("", 8080, "HTTP", "127.0.0.1:2002"), port("", 9000, "TCP", "127.0.0.1:2003")),
			},
			want: []string{
				"s.default.svc.cluster.local:8080/HTTP(default) -> 127.0.0.1:2001,127.0.0.1:2002",
				"s.default.svc.cluster.local:9000/TCP -> 127.0.0.1:2003",
			},
		},
		{
			name: "conflicting port declarations: the first is kept and reported",
			docs: []string{
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec: {service: s, ports: [{port: 8080}]}",
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: b}\nspec: {service: s, ports: [{port: 8080, protocol: GRPC}]}",
			},
			want: []string{"s.default.svc.cluster.local:8080/HTTP(default) -> "},
			wantErrors: []string{
				`service default/s port 8080: Workload default/b (mesh.yaml:6) declares it as GRPC "", but it is already HTTP ""; keeping HTTP ""`,
			},
		},
		{
			name: "v1/Service: targetPort, then name, then number; it wins over spec.service",
			docs: []string{
				serviceDoc,
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: w, labels: {app: web}}\nspec: {service: web, ports: [{name: main, port: 8080}]}",
			},
			instances: []registry.Instance{
				instance("w.default", "web", map[string]string{"app": "web"},
					port("main", 8080, "HTTP", "127.0.0.1:2001"),
					port("http-metrics", 9999, "HTTP", "127.0.0.1:2002"),
					port("other", 7070, "GRPC", "127.0.0.1:2003")),
				instance("x.default", "", map[string]string{"app": "other"}, port("main", 8080, "HTTP", "127.0.0.1:2004")),
				instance("y.elsewhere", "", map[string]string{"app": "web"}, port("main", 8080, "HTTP", "127.0.0.1:2005")),
			},
			want: []string{
				"web.default.svc.cluster.local:80/HTTP(default) -> 127.0.0.1:2001",
				"web.default.svc.cluster.local:7070/GRPC -> 127.0.0.1:2003",
				"web.default.svc.cluster.local:9090/HTTP -> 127.0.0.1:2002",
			},
		},
		{
			name: "a registered sidecar declares a service no document names",
			instances: []registry.Instance{
				instance("a.ns1", "adhoc", nil, port("http", 8080, "", "127.0.0.1:2001"), port("grpc", 9090, "grpc", "127.0.0.1:2002")),
			},
			want: []string{
				"adhoc.ns1.svc.cluster.local:8080/HTTP -> 127.0.0.1:2001",
				"adhoc.ns1.svc.cluster.local:9090/GRPC -> 127.0.0.1:2002",
			},
		},
		{
			name: "endpoints without an inbound address are left out; duplicates collapse",
			docs: []string{
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec: {service: s, ports: [{port: 80}]}",
			},
			instances: []registry.Instance{
				instance("a.default", "s", nil, port("", 80, "HTTP", "")),
				instance("b.default", "s", nil, port("", 80, "HTTP", "127.0.0.1:2001")),
				instance("c.default", "s", nil, port("", 80, "HTTP", "127.0.0.1:2001")),
			},
			want: []string{"s.default.svc.cluster.local:80/HTTP(default) -> 127.0.0.1:2001"},
		},
		{
			name: "a starting sidecar (listeners not acknowledged yet) is no endpoint",
			docs: []string{
				"apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec: {service: s, ports: [{port: 80}]}",
			},
			instances: []registry.Instance{
				instance("a.default", "s", nil, port("", 80, "HTTP", "127.0.0.1:2001")),
				starting(instance("b.default", "s", nil, port("", 80, "HTTP", "127.0.0.1:2002"))),
			},
			want: []string{"s.default.svc.cluster.local:80/HTTP(default) -> 127.0.0.1:2001"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var set *config.Set
			if len(tt.docs) > 0 {
				set = parse(t, tt.docs...)
			}
			m := Build(set, tt.instances)
			if diff := cmp.Diff(tt.want, summary(m)); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErrors, m.Errors); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// A starting sidecar's inbound listener already detects the protocol of the Service
// port without protocol that reaches it, so it does not change when it serves.
func TestStartingKeepsInboundProtocol(t *testing.T) {
	set := parse(t, "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]")
	for _, inst := range []registry.Instance{
		instance("w.default", "", map[string]string{"app": "web"}, port("", 8080, "HTTP", "127.0.0.1:2001")),
		starting(instance("w.default", "", map[string]string{"app": "web"}, port("", 8080, "HTTP", "127.0.0.1:2001"))),
	} {
		m := Build(set, []registry.Instance{inst})
		if got := m.InboundProtocol("w.default", InboundPort{Port: 8080, Protocol: "HTTP"}); got != "AUTO" {
			t.Errorf("starting %v: inbound protocol %s, want AUTO", inst.Starting, got)
		}
	}
}

func TestResolve(t *testing.T) {
	m := Build(nil, []registry.Instance{
		instance("a.prod", "api", nil, port("", 80, "HTTP", "127.0.0.1:1")),
	})
	tests := []struct {
		name, host, from string
		want             string
	}{
		{name: "bare name in the same namespace", host: "api", from: "prod", want: "api.prod.svc.cluster.local"},
		{name: "bare name elsewhere", host: "api", from: "default", want: ""},
		{name: "name.namespace", host: "api.prod", from: "default", want: "api.prod.svc.cluster.local"},
		{name: "name.namespace.svc", host: "api.prod.svc", from: "default", want: "api.prod.svc.cluster.local"},
		{name: "FQDN, any case, trailing dot", host: "API.prod.svc.cluster.local.", from: "default", want: "api.prod.svc.cluster.local"},
		{name: "unknown", host: "nope.prod", from: "prod", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if s := m.Resolve(tt.host, tt.from); s != nil {
				got = s.FQDN
			}
			if got != tt.want {
				t.Errorf("Resolve(%q, %q) = %q, want %q", tt.host, tt.from, got, tt.want)
			}
		})
	}
}

func TestDefaultPort(t *testing.T) {
	tests := []struct {
		name  string
		ports []*Port
		want  uint32
	}{
		{name: "80 wins", ports: []*Port{{Number: 8080, Protocol: "HTTP"}, {Number: 80, Protocol: "HTTP"}}, want: 80},
		{name: "only HTTP-family port", ports: []*Port{{Number: 9000, Protocol: "TCP"}, {Number: 9090, Protocol: "GRPC"}}, want: 9090},
		{name: "two HTTP ports, no 80", ports: []*Port{{Number: 8080, Protocol: "HTTP"}, {Number: 8081, Protocol: "HTTP2"}}, want: 0},
		{name: "TCP 80 is no default", ports: []*Port{{Number: 80, Protocol: "TCP"}, {Number: 8080, Protocol: "HTTP"}}, want: 8080},
		{name: "none", ports: nil, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultPort(tt.ports); got != tt.want {
				t.Errorf("defaultPort() = %d, want %d", got, tt.want)
			}
		})
	}
}

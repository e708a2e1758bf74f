package model

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/registry"
)

func peerAuth(name, namespace, body string) string {
	return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " + name +
		", namespace: " + namespace + "}\nspec:\n" + body
}

// TestMTLSMode: the effective mode of a workload port, level by level.
func TestMTLSMode(t *testing.T) {
	meshStrict := peerAuth("default", "trellis-system", "  mtls: {mode: STRICT}")
	nsDisable := peerAuth("off", "legacy", "  mtls: {mode: DISABLE}")
	nsUnset := peerAuth("unset", "default", "  mtls: {mode: UNSET}")
	workload := peerAuth("web", "default", "  selector: {matchLabels: {app: web}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n    9090: {mode: UNSET}")
	workloadUnset := peerAuth("api", "default", "  selector: {matchLabels: {app: api}}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}")
	otherNS := peerAuth("web", "other", "  selector: {matchLabels: {app: web}}\n  mtls: {mode: DISABLE}")

	tests := []struct {
		name      string
		docs      []string
		opts      []Option
		namespace string
		labels    map[string]string
		port      uint32
		want      MTLSMode
	}{
		{name: "no policy: PERMISSIVE", namespace: "default", port: 80, want: MTLSPermissive},
		{name: "mesh-wide", docs: []string{meshStrict}, namespace: "default", port: 80, want: MTLSStrict},
		{name: "root namespace is a flag", docs: []string{meshStrict}, opts: []Option{WithRootNamespace("istio-system")},
			namespace: "default", port: 80, want: MTLSPermissive},
		{name: "mesh policy in the root namespace applies there too", docs: []string{meshStrict}, namespace: "trellis-system", port: 80, want: MTLSStrict},
		{name: "namespace beats mesh", docs: []string{meshStrict, nsDisable}, namespace: "legacy", port: 80, want: MTLSDisable},
		{name: "namespace UNSET inherits", docs: []string{meshStrict, nsUnset}, namespace: "default", port: 80, want: MTLSStrict},
		{name: "workload beats namespace", docs: []string{meshStrict, workload}, namespace: "default",
			labels: map[string]string{"app": "web"}, port: 80, want: MTLSPermissive},
		{name: "port level beats workload", docs: []string{meshStrict, workload}, namespace: "default",
			labels: map[string]string{"app": "web"}, port: 8080, want: MTLSDisable},
		{name: "port level UNSET inherits the workload's", docs: []string{meshStrict, workload}, namespace: "default",
			labels: map[string]string{"app": "web"}, port: 9090, want: MTLSPermissive},
		{name: "workload UNSET inherits the mesh's", docs: []string{meshStrict, workloadUnset}, namespace: "default",
			labels: map[string]string{"app": "api"}, port: 80, want: MTLSStrict},
		{name: "port level of a workload with UNSET mode", docs: []string{meshStrict, workloadUnset}, namespace: "default",
			labels: map[string]string{"app": "api"}, port: 8080, want: MTLSPermissive},
		{name: "selector not matching", docs: []string{meshStrict, workload}, namespace: "default",
			labels: map[string]string{"app": "db"}, port: 8080, want: MTLSStrict},
		{name: "selector of another namespace", docs: []string{meshStrict, otherNS}, namespace: "default",
			labels: map[string]string{"app": "web"}, port: 80, want: MTLSStrict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m *Mesh
			if len(tt.docs) == 0 {
				m = Build(nil, nil, tt.opts...)
			} else {
				m = Build(parse(t, tt.docs...), nil, tt.opts...)
			}
			if got := m.MTLSMode(tt.namespace, tt.labels, tt.port); got != tt.want {
				t.Errorf("MTLSMode = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPeerAuthenticationConflicts(t *testing.T) {
	docs := []string{
		peerAuth("b", "default", "  mtls: {mode: STRICT}"),
		peerAuth("a", "default", "  mtls: {mode: DISABLE}"),
		peerAuth("w1", "default", "  selector: {matchLabels: {app: web}}\n  mtls: {mode: DISABLE}"),
		peerAuth("w2", "default", "  selector: {matchLabels: {tier: front}}\n  mtls: {mode: STRICT}"),
	}
	inst := instance("web.default", "web", map[string]string{"app": "web", "tier": "front"}, port("http", 80, "HTTP", "127.0.0.1:2"))
	m := Build(parse(t, docs...), nil)
	if got := m.MTLSMode("default", nil, 80); got != MTLSDisable {
		t.Errorf("namespace mode = %s, want DISABLE (a, the first by name, wins)", got)
	}
	if diff := cmp.Diff([]string{`mesh.yaml:1: PeerAuthentication default/b: spec.selector: PeerAuthentication default/a already applies to every workload of namespace default (the oldest wins); this one is ignored`},
		errorStrings(m)); diff != "" {
		t.Errorf("config errors (-want +got):\n%s", diff)
	}
	m2 := Build(parse(t, docs...), []registry.Instance{inst})
	if len(m2.Errors) != 1 || !strings.Contains(m2.Errors[0], "default/w1 and PeerAuthentication default/w2 both select workload web.default") {
		t.Errorf("errors = %q, want one about w1 and w2 selecting web.default", m2.Errors)
	}
}

// TestClusterTLS: how a client reaches each cluster, from auto mTLS and
// DestinationRules.
func TestClusterTLS(t *testing.T) {
	mtls := func(inst registry.Instance) registry.Instance {
		inst.Metadata.MTLS = true
		inst.Metadata.ServiceAccount = "sa-" + inst.Metadata.Workload
		return inst
	}
	workload := func(name, service string, labels string) string {
		return "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: " + name + ", labels: " + labels +
			"}\nspec:\n  service: " + service + "\n  serviceAccount: sa-" + name + "\n  ports: [{name: http, port: 80}]"
	}
	docs := []string{
		workload("web-v1", "web", "{app: web, version: v1}"),
		workload("web-v2", "web", "{app: web, version: v2}"),
		workload("old", "old", "{app: old}"),
		workload("ext", "ext", "{app: ext}"),
		peerAuth("old", "default", "  selector: {matchLabels: {app: old}}\n  mtls: {mode: DISABLE}"),
		`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
  - {name: v2, labels: {version: v2}}
  - name: plain
    labels: {version: v1}
    trafficPolicy: {tls: {mode: DISABLE}}`,
		`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext}
spec:
  host: ext
  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /ca.pem}}`,
		`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  location: MESH_INTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]`,
	}
	instances := []registry.Instance{
		mtls(instance("web-v1.default", "web", map[string]string{"app": "web", "version": "v1"}, port("http", 80, "HTTP", "127.0.0.1:2"))),
		mtls(instance("old.default", "old", map[string]string{"app": "old"}, port("http", 80, "HTTP", "127.0.0.1:3"))),
		instance("legacy.default", "legacy", nil, port("http", 80, "HTTP", "127.0.0.1:4")),
	}
	m := Build(parse(t, docs...), instances)
	tests := []struct {
		name string
		ref  ClusterRef
		want *ClusterTLS
	}{
		{name: "auto mTLS: the endpoints' and the declared workloads' identities", ref: ClusterRef{Service: "web.default.svc.cluster.local", Port: 80},
			want: &ClusterTLS{Mode: TLSIstioMutual, Auto: true, TrustDomain: "cluster.local", Identities: []string{
				"spiffe://cluster.local/ns/default/sa/sa-web-v1", "spiffe://cluster.local/ns/default/sa/sa-web-v2"}}},
		{name: "a subset: only its identities, even before its sidecars connect", ref: ClusterRef{Service: "web.default.svc.cluster.local", Port: 80, Subset: "v2"},
			want: &ClusterTLS{Mode: TLSIstioMutual, Auto: true, TrustDomain: "cluster.local", Identities: []string{
				"spiffe://cluster.local/ns/default/sa/sa-web-v2"}}},
		{name: "a subset with tls DISABLE", ref: ClusterRef{Service: "web.default.svc.cluster.local", Port: 80, Subset: "plain"}},
		{name: "every endpoint DISABLE: plaintext", ref: ClusterRef{Service: "old.default.svc.cluster.local", Port: 80}},
		{name: "a sidecar without mTLS: plaintext", ref: ClusterRef{Service: "legacy.default.svc.cluster.local", Port: 80}},
		{name: "DestinationRule SIMPLE", ref: ClusterRef{Service: "ext.default.svc.cluster.local", Port: 80},
			want: &ClusterTLS{Mode: TLSSimple, Settings: &ClientTLS{Mode: TLSSimple, CACertificates: "/ca.pem"}}},
		{name: "ServiceEntry: no TLS unless asked", ref: ClusterRef{Service: "api.example.com", Port: 443}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := m.Cluster(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, info.TLS); diff != "" {
				t.Errorf("TLS (-want +got):\n%s", diff)
			}
		})
	}
}

package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// designExample is the Workload of DESIGN.md section 6, word for word.
const designExample = `apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata:
  name: reviews-v2
  namespace: default                 # default "default"
  labels: {app: reviews, version: v2}
spec:
  service: reviews                   # the service it serves; none for a client-only workload
  serviceAccount: bookinfo-reviews   # identity; default "default"
  ports:
  - name: http
    port: 9080                       # the port clients call: http://reviews:9080
    targetPort: 18082                # where the app listens on 127.0.0.1; if absent, one is
                                     # chosen and given to the app as $PORT
    protocol: HTTP                   # HTTP | HTTP2 | GRPC | TCP; default HTTP
  command: ["./reviews", "--listen", "127.0.0.1:$(PORT)"]   # optional; $(VAR) expands as in Kubernetes
  env: {LOG_LEVEL: info}
  outbound: 127.0.0.1:15101          # optional fixed address of its sidecar's outbound listener
  upstreams:                         # optional fixed local ports, for TCP services
  - {service: tcp-echo, port: 9000, bind: 127.0.0.1:19000}
`

func workloadType() metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion, Kind: v1alpha1.KindWorkload}
}

func serviceType() metav1.TypeMeta { return metav1.TypeMeta{APIVersion: "v1", Kind: "Service"} }

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want *Set
	}{
		{
			name: "DESIGN.md example",
			src:  designExample,
			want: &Set{Workloads: []Workload{{
				Pos: Position{File: "mesh.yaml", Line: 1},
				Workload: &v1alpha1.Workload{
					TypeMeta: workloadType(),
					ObjectMeta: metav1.ObjectMeta{
						Name: "reviews-v2", Namespace: "default",
						Labels: map[string]string{"app": "reviews", "version": "v2"},
					},
					Spec: v1alpha1.WorkloadSpec{
						Service:        "reviews",
						ServiceAccount: "bookinfo-reviews",
						Ports:          []v1alpha1.WorkloadPort{{Name: "http", Port: 9080, TargetPort: 18082, Protocol: v1alpha1.ProtocolHTTP}},
						Command:        []string{"./reviews", "--listen", "127.0.0.1:$(PORT)"},
						Env:            map[string]string{"LOG_LEVEL": "info"},
						Outbound:       "127.0.0.1:15101",
						Upstreams:      []v1alpha1.Upstream{{Service: "tcp-echo", Port: 9000, Bind: "127.0.0.1:19000"}},
					},
				},
			}}},
		},
		{
			name: "defaults, comments, empty documents, protocol in any case",
			src: lines(
				"# the mesh",                       // 1
				"---",                              // 2
				"---",                              // 3
				"# nothing",                        // 4
				"---",                              // 5
				"apiVersion: trellis.dev/v1alpha1", // 6
				"kind: Workload",
				"metadata: {name: client}",
				"spec:",
				"  ports: [{port: 80}, {port: 81, protocol: grpc}, {port: 82, protocol: Http2}]",
				"  env: {N: 1, B: true, F: 1.50}", // unquoted scalars are strings in a string map
				"...",
			),
			want: &Set{Workloads: []Workload{{
				Pos: Position{File: "mesh.yaml", Line: 6},
				Workload: &v1alpha1.Workload{
					TypeMeta:   workloadType(),
					ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "default"},
					Spec: v1alpha1.WorkloadSpec{
						ServiceAccount: "default",
						Ports: []v1alpha1.WorkloadPort{
							{Port: 80, Protocol: v1alpha1.ProtocolHTTP},
							{Port: 81, Protocol: v1alpha1.ProtocolGRPC},
							{Port: 82, Protocol: v1alpha1.ProtocolHTTP2},
						},
						Env: map[string]string{"N": "1", "B": "true", "F": "1.50"},
					},
				},
			}}},
		},
		{
			name: "service defaults and sorting by namespace/name",
			src: lines(
				"apiVersion: v1", // 1
				"kind: Service",
				"metadata: {name: web, namespace: prod}",
				"spec:",
				"  selector: {app: web}",
				"  ports: [{name: http, port: 80}, {name: admin, port: 9000, targetPort: admin}]",
				"---", // 7
				"apiVersion: v1",
				"kind: Service",
				"metadata: {name: web}",
				"spec: {selector: {app: web}, ports: [{port: 8080, targetPort: 18080, appProtocol: http}]}",
			),
			want: &Set{Services: []Service{
				{
					Pos: Position{File: "mesh.yaml", Line: 8},
					Service: &corev1.Service{
						TypeMeta:   serviceType(),
						ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
						Spec: corev1.ServiceSpec{
							Selector: map[string]string{"app": "web"},
							Ports: []corev1.ServicePort{{
								Port: 8080, TargetPort: intstr.FromInt32(18080), Protocol: corev1.ProtocolTCP,
								AppProtocol: ptr("http"),
							}},
						},
					},
				},
				{
					Pos: Position{File: "mesh.yaml", Line: 1},
					Service: &corev1.Service{
						TypeMeta:   serviceType(),
						ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod"},
						Spec: corev1.ServiceSpec{
							Selector: map[string]string{"app": "web"},
							Ports: []corev1.ServicePort{
								{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80), Protocol: corev1.ProtocolTCP},
								{Name: "admin", Port: 9000, TargetPort: intstr.FromString("admin"), Protocol: corev1.ProtocolTCP},
							},
						},
					},
				},
			}},
		},
		{
			name: "anchors, aliases and merge keys",
			src: lines(
				"apiVersion: trellis.dev/v1alpha1",
				"kind: Workload",
				"metadata: {name: a, labels: &labels {app: a}}",
				"spec:",
				"  ports:",
				"  - &http {name: http, port: 80}",
				"  - {<<: *http, name: alt, port: 81}",
				"  env: *labels",
			),
			want: &Set{Workloads: []Workload{{
				Pos: Position{File: "mesh.yaml", Line: 1},
				Workload: &v1alpha1.Workload{
					TypeMeta:   workloadType(),
					ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default", Labels: map[string]string{"app": "a"}},
					Spec: v1alpha1.WorkloadSpec{
						ServiceAccount: "default",
						Ports: []v1alpha1.WorkloadPort{
							{Name: "http", Port: 80, Protocol: v1alpha1.ProtocolHTTP},
							{Name: "alt", Port: 81, Protocol: v1alpha1.ProtocolHTTP},
						},
						Env: map[string]string{"app": "a"},
					},
				},
			}}},
		},
		{
			name: "only comments",
			src:  "# nothing here\n---\n",
			want: &Set{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("mesh.yaml", []byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSyntaxErrorLines(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{name: "scanner error", src: "a: 1\nb: @x\n", want: "m.yaml:2: invalid YAML: found character that cannot start any token"},
		{name: "parser error", src: "a: 1\n- b\n", want: "m.yaml:2: invalid YAML: did not find expected key"},
		{name: "parser error on the first line", src: "[x\n", want: "m.yaml:1: invalid YAML: did not find expected ',' or ']'"},
		{name: "in a later document", src: "# a\n---\n\nb: 1\n c: 2\n", want: "m.yaml:5: invalid YAML: mapping values are not allowed in this context"},
		{name: "unknown anchor", src: "---\na: *x\n", want: "m.yaml:2: invalid YAML: unknown anchor 'x' referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tt.src))
			if diff := cmp.Diff([]string{tt.want}, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", designExample)
	b := write("b.yaml", "# b\n"+designExample)
	svc := write("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec: {selector: {app: reviews}, ports: [{port: 9080}]}\n")
	bad := write("bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {app: x}, ports: [{port: 0}]}\n")

	t.Run("files combine", func(t *testing.T) {
		set, err := LoadFiles([]string{a, svc})
		if err != nil {
			t.Fatalf("LoadFiles: %v", err)
		}
		want := []ObjectRef{
			{Kind: "Workload", Namespace: "default", Name: "reviews-v2", Pos: Position{File: a, Line: 1}},
			{Kind: "Service", Namespace: "default", Name: "reviews", Pos: Position{File: svc, Line: 1}},
		}
		if diff := cmp.Diff(want, set.Objects()); diff != "" {
			t.Errorf("objects (-want +got):\n%s", diff)
		}
	})
	t.Run("every file's problems, and duplicates across files", func(t *testing.T) {
		_, err := LoadFiles([]string{a, b, bad, filepath.Join(dir, "missing.yaml")})
		want := []string{
			b + ":2: Workload default/reviews-v2: defined twice: here and at " + a + ":1 (the one at " + a + ":1 is used)",
			bad + ":4: Service default/x: spec.ports[0].port: required",
			filepath.Join(dir, "missing.yaml") + ": reading file: no such file or directory",
		}
		if diff := cmp.Diff(want, errorStrings(t, err)); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
	})
}

func TestCombine(t *testing.T) {
	w := func(file, ns, name string) Workload {
		return Workload{Pos: Position{File: file, Line: 1}, Workload: &v1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
	}
	s := func(file, ns, name string) Service {
		return Service{Pos: Position{File: file, Line: 1}, Service: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}
	}
	first := &Set{Workloads: []Workload{w("a", "default", "z"), w("a", "default", "x")}, Services: []Service{s("a", "default", "x")}}
	second := &Set{Workloads: []Workload{w("b", "default", "x"), w("b", "a", "y")}}

	got, errs := Combine(first, nil, second)
	wantRefs := []ObjectRef{
		{Kind: "Workload", Namespace: "a", Name: "y", Pos: Position{File: "b", Line: 1}},
		{Kind: "Workload", Namespace: "default", Name: "x", Pos: Position{File: "a", Line: 1}},
		{Kind: "Workload", Namespace: "default", Name: "z", Pos: Position{File: "a", Line: 1}},
		{Kind: "Service", Namespace: "default", Name: "x", Pos: Position{File: "a", Line: 1}},
	}
	if diff := cmp.Diff(wantRefs, got.Objects()); diff != "" {
		t.Errorf("Combine objects (-want +got):\n%s", diff)
	}
	wantErrs := []string{"b:1: Workload default/x: defined twice: here and at a:1 (the one at a:1 is used)"}
	if diff := cmp.Diff(wantErrs, errorStrings(t, errs.Err())); diff != "" {
		t.Errorf("Combine errors (-want +got):\n%s", diff)
	}

	merged := first.Merge(second)
	if got, want := len(merged.Workloads), 4; got != want {
		t.Errorf("Merge kept %d workloads, want %d (Merge does not drop duplicates)", got, want)
	}
	if got := (*Set)(nil).Merge(nil); got == nil || len(got.Objects()) != 0 {
		t.Errorf("nil.Merge(nil) = %+v, want an empty Set", got)
	}
}

func TestServicePortProtocol(t *testing.T) {
	tests := []struct {
		name string
		port corev1.ServicePort
		want v1alpha1.Protocol
	}{
		{name: "no hint", port: corev1.ServicePort{Name: "web"}, want: v1alpha1.ProtocolTCP},
		{name: "unnamed", port: corev1.ServicePort{}, want: v1alpha1.ProtocolTCP},
		{name: "named http", port: corev1.ServicePort{Name: "http"}, want: v1alpha1.ProtocolHTTP},
		{name: "http- prefix", port: corev1.ServicePort{Name: "http-web"}, want: v1alpha1.ProtocolHTTP},
		{name: "http2- prefix", port: corev1.ServicePort{Name: "http2-web"}, want: v1alpha1.ProtocolHTTP2},
		{name: "grpc- prefix", port: corev1.ServicePort{Name: "grpc-api"}, want: v1alpha1.ProtocolGRPC},
		{name: "named grpc", port: corev1.ServicePort{Name: "grpc"}, want: v1alpha1.ProtocolGRPC},
		{name: "tcp- prefix", port: corev1.ServicePort{Name: "tcp-db"}, want: v1alpha1.ProtocolTCP},
		{name: "prefix without dash", port: corev1.ServicePort{Name: "httpx"}, want: v1alpha1.ProtocolTCP},
		{name: "appProtocol wins over name", port: corev1.ServicePort{Name: "http", AppProtocol: ptr("grpc")}, want: v1alpha1.ProtocolGRPC},
		{name: "appProtocol h2c", port: corev1.ServicePort{AppProtocol: ptr("kubernetes.io/h2c")}, want: v1alpha1.ProtocolHTTP2},
		{name: "appProtocol case", port: corev1.ServicePort{AppProtocol: ptr("HTTP")}, want: v1alpha1.ProtocolHTTP},
		{name: "appProtocol tcp", port: corev1.ServicePort{Name: "http", AppProtocol: ptr("tcp")}, want: v1alpha1.ProtocolTCP},
		{name: "unknown appProtocol falls back to name", port: corev1.ServicePort{Name: "http2", AppProtocol: ptr("example.com/x")}, want: v1alpha1.ProtocolHTTP2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ServicePortProtocol(tt.port); got != tt.want {
				t.Errorf("ServicePortProtocol(%+v) = %s, want %s", tt.port, got, tt.want)
			}
		})
	}
}

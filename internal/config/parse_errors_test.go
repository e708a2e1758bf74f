package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// lines joins YAML lines, so that tests can count them.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// errorStrings is every problem of err, one a string.
func errorStrings(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not an ErrorList: %v", err, err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Error())
	}
	return out
}

func TestParseErrors(t *testing.T) {
	workload := lines(
		"apiVersion: trellis.dev/v1alpha1", // 1
		"kind: Workload",                   // 2
		"metadata:",                        // 3
		"  name: echo-v1",                  // 4
		"spec:",                            // 5
		"  service: echo",                  // 6
		"  ports:",                         // 7
	)
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "malformed YAML",
			src:  lines("apiVersion: v1", "kind: Service", "metadata:", "  name: [x", "spec: {}"),
			want: []string{"mesh.yaml:4: invalid YAML: did not find expected ',' or ']'"},
		},
		{
			name: "malformed document does not hide the next one",
			src: lines(
				"a: b", "  c: d", // 1-2
				"---",                              // 3
				"apiVersion: trellis.dev/v1alpha1", // 4
				"kind: Workload",                   // 5
				"metadata: {name: x}",              // 6
				"spec: {servce: x}",                // 7
			),
			want: []string{
				"mesh.yaml:2: invalid YAML: mapping values are not allowed in this context",
				`mesh.yaml:7: Workload default/x: spec.servce: unknown field (did you mean "service"?)`,
			},
		},
		{
			name: "missing apiVersion",
			src:  lines("# c", "kind: Workload", "metadata: {name: x}"),
			want: []string{"mesh.yaml:2: Workload default/x: apiVersion: required"},
		},
		{
			name: "missing kind",
			src:  lines("apiVersion: v1", "metadata: {name: x}"),
			want: []string{"mesh.yaml:1: kind: required"},
		},
		{
			name: "unknown kind",
			src:  lines("apiVersion: v1", "kind: Pod", "metadata: {name: x, namespace: prod}"),
			want: []string{`mesh.yaml:2: Pod prod/x: kind: unknown kind "Pod" in apiVersion "v1" (supported: v1 Service)`},
		},
		{
			name: "unknown apiVersion",
			src:  lines("apiVersion: trellis.dev/v1", "kind: Workload", "metadata: {name: x}"),
			want: []string{`mesh.yaml:2: Workload default/x: kind: unknown kind "Workload" in apiVersion "trellis.dev/v1" (supported: trellis.dev/v1alpha1 Workload)`},
		},
		{
			name: "document not a mapping",
			src:  lines("- a", "- b"),
			want: []string{"mesh.yaml:1: a document must be a mapping with apiVersion, kind and metadata, got a list"},
		},
		{
			name: "unknown field at the top",
			src:  lines("apiVersion: v1", "kind: Service", "metadata: {name: x}", "specs: {}"),
			want: []string{`mesh.yaml:4: Service default/x: specs: unknown field (did you mean "spec"?)`},
		},
		{
			name: "unknown field in metadata",
			src:  workload + lines("  - port: 80", "---", "apiVersion: v1", "kind: Service", "metadata:", "  name: y", "  lables: {a: b}"),
			want: []string{`mesh.yaml:14: Service default/y: metadata.lables: unknown field (did you mean "labels"?)`},
		},
		{
			name: "unknown field deep in a list",
			src:  workload + lines("  - name: http", "    port: 80", "    prot: HTTP"),
			want: []string{`mesh.yaml:10: Workload default/echo-v1: spec.ports[0].prot: unknown field (did you mean "protocol"?)`},
		},
		{
			name: "unknown field far from any known one",
			src:  workload + lines("  - port: 80", "    zzzzzzzz: 1"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.ports[0].zzzzzzzz: unknown field`},
		},
		{
			name: "field names are case sensitive",
			src:  workload + lines("  - Port: 80"),
			want: []string{`mesh.yaml:8: Workload default/echo-v1: spec.ports[0].Port: unknown field (did you mean "port"?)`},
		},
		{
			name: "wrong type: string for integer",
			src:  workload + lines("  - name: http", "    port: abc"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.ports[0].port: wrong type: expected an integer, got string "abc"`},
		},
		{
			name: "wrong type: quoted number for integer",
			src:  workload + lines(`  - port: "80"`),
			want: []string{`mesh.yaml:8: Workload default/echo-v1: spec.ports[0].port: wrong type: expected an integer, got string "80"`},
		},
		{
			name: "wrong type: mapping for list",
			src:  workload + lines("    http: 80"),
			want: []string{`mesh.yaml:7: Workload default/echo-v1: spec.ports: wrong type: expected a list, got a mapping`},
		},
		{
			name: "wrong type: list for string",
			src:  workload + lines("  - port: 80", "  outbound: [a]"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.outbound: wrong type: expected a string, got a list`},
		},
		{
			name: "integer out of range for its type",
			src:  workload + lines("  - port: 99999999999"),
			want: []string{`mesh.yaml:8: Workload default/echo-v1: spec.ports[0].port: 99999999999 is out of range for a 32-bit integer (-2147483648 to 2147483647)`},
		},
		{
			name: "value rejected by the type's own decoder",
			src:  lines("apiVersion: v1", "kind: Service", "metadata: {name: x}", "spec:", "  selector: {app: x}", "  ports:", "  - port: 80", "    targetPort: {a: 1}"),
			want: []string{`mesh.yaml:8: Service default/x: spec.ports[0].targetPort: wrong type: expected a single value, got a mapping`},
		},
		{
			name: "duplicate key",
			src:  workload + lines("  - port: 80", "    port: 81"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.ports[0].port: duplicate key (first at line 8)`},
		},
		{
			name: "unsupported tag",
			src:  workload + lines("  - port: !custom 80"),
			want: []string{`mesh.yaml:8: Workload default/echo-v1: spec.ports[0].port: unsupported YAML tag !custom`},
		},
		{
			name: "name required",
			src:  lines("apiVersion: trellis.dev/v1alpha1", "kind: Workload", "metadata:", "  labels: {a: b}"),
			want: []string{"mesh.yaml:3: Workload: metadata.name: required"},
		},
		{
			name: "name not a DNS label",
			src:  lines("apiVersion: trellis.dev/v1alpha1", "kind: Workload", "metadata:", "  name: Echo_1"),
			want: []string{"mesh.yaml:4: Workload default/Echo_1: metadata.name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"},
		},
		{
			name: "port out of range",
			src:  workload + lines("  - port: 70000", "    targetPort: -1"),
			want: []string{
				"mesh.yaml:8: Workload default/echo-v1: spec.ports[0].port: port 70000 is out of range 1..65535",
				"mesh.yaml:9: Workload default/echo-v1: spec.ports[0].targetPort: port -1 is out of range 0..65535 (0 chooses a free port)",
			},
		},
		{
			name: "port missing",
			src:  workload + lines("  - name: http"),
			want: []string{"mesh.yaml:8: Workload default/echo-v1: spec.ports[0].port: required"},
		},
		{
			name: "duplicate port names and numbers",
			src: workload + lines(
				"  - {name: http, port: 80, targetPort: 8080}",
				"  - {name: http, port: 80, targetPort: 8080}",
			),
			want: []string{
				`mesh.yaml:9: Workload default/echo-v1: spec.ports[1].name: duplicate port name "http" (also ports[0])`,
				`mesh.yaml:9: Workload default/echo-v1: spec.ports[1].port: duplicate port 80 (also ports[0])`,
				`mesh.yaml:9: Workload default/echo-v1: spec.ports[1].targetPort: duplicate targetPort 8080 (also ports[0])`,
			},
		},
		{
			name: "unknown protocol",
			src:  workload + lines("  - port: 80", "    protocol: udp"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.ports[0].protocol: unknown protocol "udp": use HTTP, HTTP2, GRPC or TCP`},
		},
		{
			name: "upstream incomplete",
			src:  workload + lines("  - port: 80", "  upstreams:", "  - {port: 0}", "  - service: db", "    port: 5432", "    bind: 19000"),
			want: []string{
				"mesh.yaml:10: Workload default/echo-v1: spec.upstreams[0].service: required",
				"mesh.yaml:10: Workload default/echo-v1: spec.upstreams[0].port: required",
				"mesh.yaml:10: Workload default/echo-v1: spec.upstreams[0].bind: required: the local host:port to listen on, such as 127.0.0.1:19000",
				`mesh.yaml:13: Workload default/echo-v1: spec.upstreams[1].bind: "19000" is not a host:port address: missing port in address`,
			},
		},
		{
			name: "outbound not host:port",
			src:  workload + lines("  - port: 80", "  outbound: 127.0.0.1:http"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.outbound: "127.0.0.1:http": port "http" is not a number in 1..65535`},
		},
		{
			name: "drain period not a duration",
			src:  workload + lines("  - port: 80", "  drainPeriod: 5"),
			want: []string{`mesh.yaml:9: Workload default/echo-v1: spec.drainPeriod: "5" is not a positive duration such as 5s`},
		},
		{
			name: "defined twice in one file",
			src:  workload + lines("  - port: 80", "---") + workload + lines("  - port: 81"),
			want: []string{"mesh.yaml:10: Workload default/echo-v1: defined twice: here and at mesh.yaml:1 (the one at mesh.yaml:1 is used)"},
		},
		{
			name: "service without selector or ports",
			src:  lines("apiVersion: v1", "kind: Service", "metadata: {name: db}", "spec:", "  type: ClusterIP"),
			want: []string{
				"mesh.yaml:4: Service default/db: spec.selector: required: selector-less Services are not supported in local mode (a Service's endpoints are the Workloads its selector matches)",
				"mesh.yaml:4: Service default/db: spec.ports: required: a Service needs at least one port",
			},
		},
		{
			name: "service port problems",
			src: lines(
				"apiVersion: v1", "kind: Service", "metadata: {name: db}", "spec:", // 1-4
				"  selector: {app: db}", // 5
				"  ports:",              // 6
				"  - port: 53",          // 7
				"    protocol: UDP",     // 8
				"  - name: b",           // 9
				"    port: 0",           // 10
			),
			want: []string{
				"mesh.yaml:7: Service default/db: spec.ports[0].name: required when a Service has more than one port",
				"mesh.yaml:8: Service default/db: spec.ports[0].protocol: protocol UDP is not supported: the mesh carries TCP (and HTTP, gRPC over it)",
				"mesh.yaml:10: Service default/db: spec.ports[1].port: required",
			},
		},
		{
			name: "every problem of a file is reported",
			src: workload + lines(
				"  - port: abc", // 8
				"---",           // 9
				"apiVersion: v1",
				"kind: Nope", // 11
			),
			want: []string{
				`mesh.yaml:8: Workload default/echo-v1: spec.ports[0].port: wrong type: expected an integer, got string "abc"`,
				`mesh.yaml:11: Nope: kind: unknown kind "Nope" in apiVersion "v1" (supported: v1 Service)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("mesh.yaml", []byte(tt.src))
			if set != nil {
				t.Errorf("Parse returned a Set along with errors")
			}
			if diff := cmp.Diff(tt.want, errorStrings(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

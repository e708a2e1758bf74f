package analyze

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/config"
)

func TestFiles(t *testing.T) {
	tests := []struct {
		name       string
		files      []string
		want       []string
		wantErrors int
	}{
		{
			name:  "unsupported fields and rules that cannot be applied, each at its field's line",
			files: []string{"testdata/unsupported.yaml"},
			want: []string{
				`testdata/unsupported.yaml:13: error: VirtualService default/reviews: spec.hosts[1]: no service "ratings" seen from namespace "default"; the host is skipped`,
				`testdata/unsupported.yaml:14: warning: VirtualService default/reviews: spec.gateways: "edge-gateway" not supported: Trellis has no gateways; a VirtualService that names none of "mesh" does not apply to sidecars; ignored`,
				`testdata/unsupported.yaml:18: warning: VirtualService default/reviews: spec.http[0].match[0].scheme: not supported: the sidecar does not match on the scheme; ignored`,
				`testdata/unsupported.yaml:23: warning: VirtualService default/reviews: spec.http[0].retries.retryOn: retry condition "envoy-ratelimited" is not supported and is ignored (supported: 5xx, gateway-error, connect-failure, reset, retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, and status codes)`,
				`testdata/unsupported.yaml:24: warning: VirtualService default/reviews: spec.http[0].retries.retryRemoteLocalities: not supported: Trellis has no localities; ignored`,
				`testdata/unsupported.yaml:27: warning: VirtualService default/reviews: spec.http[0].fault.delay.exponentialDelay: not supported: only fixed delays are implemented; ignored`,
				`testdata/unsupported.yaml:28: error: VirtualService default/reviews: spec.http[0].route: 2 destinations and no weights: give them weights that add up to 100; the traffic is split equally`,
				`testdata/unsupported.yaml:29: error: VirtualService default/reviews: spec.http[0].route[0].destination.subset: no DestinationRule defines subset "v9" of reviews.default.svc.cluster.local; the destination is skipped`,
				`testdata/unsupported.yaml:31: warning: VirtualService default/reviews: spec.tls: not supported: TLS routes need routing by SNI, which the sidecar does not do; ignored`,
				`testdata/unsupported.yaml:42: warning: DestinationRule default/reviews: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH not supported: the sidecar does not see the original destination; ROUND_ROBIN is used`,
				`testdata/unsupported.yaml:43: warning: DestinationRule default/reviews: spec.trafficPolicy.loadBalancer.localityLbSetting: not supported: Trellis has no localities; ignored`,
				`testdata/unsupported.yaml:44: warning: DestinationRule default/reviews: spec.trafficPolicy.tls.credentialName: not supported: sidecars read no Kubernetes Secrets; give clientCertificate, privateKey and caCertificates as files; ignored`,
				`testdata/unsupported.yaml:49: warning: DestinationRule default/reviews: spec.trafficPolicy.portLevelSettings[0].connectionPool.tcp.tcpKeepalive: not supported: TCP keepalive settings are not implemented; ignored`,
				`testdata/unsupported.yaml:55: warning: DestinationRule default/reviews: spec.subsets[0].trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: not supported: local-origin failures are counted with the others; ignored`,
				`testdata/unsupported.yaml:62: warning: ServiceEntry default/external: spec.addresses: not supported: virtual IPs need transparent interception; clients reach the hosts by name; ignored`,
				`testdata/unsupported.yaml:68: warning: ServiceEntry default/external: spec.endpoints[0].locality: not supported: Trellis has no localities; ignored`,
				`testdata/unsupported.yaml:75: warning: HTTPRoute default/reviews: spec.parentRefs[0]: a parent of kind Gateway (group gateway.networking.k8s.io) not supported: in mesh mode only Services are; ignored`,
				`testdata/unsupported.yaml:76: error: HTTPRoute default/reviews: spec.parentRefs[1].name: no Service default/ratings; the parent is skipped`,
				`testdata/unsupported.yaml:77: warning: HTTPRoute default/reviews: spec.hostnames: not supported: in mesh mode a route applies to the requests addressed to its parent Service, whatever the host; ignored`,
				`testdata/unsupported.yaml:81: warning: HTTPRoute default/reviews: spec.rules[0].filters[0].extensionRef: not supported: extension filters are not implemented; ignored`,
				`testdata/unsupported.yaml:84: warning: HTTPRoute default/reviews: spec.rules[0].backendRefs[1]: a backend of kind Bucket (group example.com) not supported: in mesh mode only Services are; ignored`,
				`testdata/unsupported.yaml:85: warning: HTTPRoute default/reviews: spec.rules[0].sessionPersistence: not supported: session persistence is not implemented (a DestinationRule's consistentHash comes close); ignored`,
				"testdata/unsupported.yaml:93: warning: Sidecar default/default: spec.egress[0].port: not supported: egress hosts apply to every port of the services they select; ignored",
				"testdata/unsupported.yaml:94: warning: Sidecar default/default: spec.ingress: not supported: inbound listeners come from the workload's ports; the Sidecar does not change them; ignored",
			},
			wantErrors: 4,
		},
		{
			name:  "authorization policies that cannot match, unknown names, and mistakes",
			files: []string{"testdata/authz.yaml"},
			want: []string{
				`testdata/authz.yaml:15: warning: AuthorizationPolicy default/no-such-workload: spec.selector: the policy applies to no known workload (selector map[app:ratings] in namespace default)`,
				`testdata/authz.yaml:24: warning: AuthorizationPolicy default/allow-nothing: spec.rules: an ALLOW policy without rules matches nothing: it denies every request to the workloads it applies to`,
				`testdata/authz.yaml:35: warning: AuthorizationPolicy default/names: spec.rules[0]: this rule can never match on the ports the policy applies to (its ports, or HTTP-only fields on TCP ports)`,
				`testdata/authz.yaml:37: warning: AuthorizationPolicy default/names: spec.rules[0].from[0].source.namespaces[1]: no known workload or service is in namespace "prod"`,
				`testdata/authz.yaml:40: warning: AuthorizationPolicy default/names: spec.rules[0].from[0].source.principals[1]: no known workload has the identity "cluster.local/ns/default/sa/productpage" (known: cluster.local/ns/default/sa/reviews)`,
				`testdata/authz.yaml:46: error: AuthorizationPolicy default/names: spec.rules[1].to[0].operation.paths[0]: path template "/a/{*}x": segment "{*}x": an operator ({*} or {**}) must be a whole segment, and *, { and } may not appear elsewhere`,
				`testdata/authz.yaml:48: error: AuthorizationPolicy default/names: spec.rules[2].when[0].key: condition key "request.time" is not supported (supported: request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], destination.port, connection.sni)`,
				`testdata/authz.yaml:55: warning: RequestAuthentication default/jwt: spec.targetRefs: the policy applies to no known workload (Services default/ratings)`,
				`testdata/authz.yaml:59: error: RequestAuthentication default/jwt: spec.jwtRules[0].jwks: not a JSON Web Key Set: no "keys": no key can verify a token of "https://issuer.example.com", every one is refused`,
				`testdata/authz.yaml:60: warning: RequestAuthentication default/jwt: spec.jwtRules[0].fromCookies: not supported: tokens in cookies are not implemented (CSRF exposure); send them in a header; ignored`,
			},
			wantErrors: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Files(tt.files)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range res.Findings {
				got = append(got, f.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if res.Errors() != tt.wantErrors {
				t.Errorf("Errors() = %d, want %d", res.Errors(), tt.wantErrors)
			}
		})
	}
}

func TestFilesParseErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  htp: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Files([]string{bad})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := res.Write(&out); err != nil {
		t.Fatal(err)
	}
	want := bad + ":6: error: VirtualService default/r: spec.htp: unknown field (did you mean \"http\"?)"
	if !strings.HasPrefix(out.String(), want) || !strings.HasSuffix(out.String(), "1 error, 0 warnings\n") {
		t.Errorf("output:\n%s\nwant it to start with %q and end with the summary", out.String(), want)
	}
}

func TestLocate(t *testing.T) {
	file := "apiVersion: v1\nkind: X\nmetadata: {name: a}\n---\n# second\napiVersion: v1\nkind: Y\nspec:\n  items:\n  - name: one\n  - name: two\n    per_try_timeout: 1s\n    \"odd.key\": 1\n"
	loc := &Locator{ReadFile: func(string) ([]byte, error) { return []byte(file), nil }}
	tests := []struct {
		name     string
		docLine  int
		field    string
		wantLine int
	}{
		{name: "list item", docLine: 6, field: "spec.items[1]", wantLine: 11},
		{name: "camelCase finds snake_case", docLine: 6, field: "spec.items[1].perTryTimeout", wantLine: 12},
		{name: "quoted key", docLine: 6, field: `spec.items[1]["odd.key"]`, wantLine: 13},
		{name: "missing field: its closest parent", docLine: 6, field: "spec.items[0].absent", wantLine: 10},
		{name: "no field: the document", docLine: 1, field: "", wantLine: 1},
		{name: "unknown document: unchanged", docLine: 3, field: "spec", wantLine: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loc.Locate([]*config.Error{{Pos: config.Position{File: "f.yaml", Line: tt.docLine}, Field: tt.field}})
			if got[0].Pos.Line != tt.wantLine {
				t.Errorf("line = %d, want %d", got[0].Pos.Line, tt.wantLine)
			}
		})
	}
}

package control

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/model"
)

const jwtMesh = `apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: api, labels: {app: api}}
spec:
  service: api
  ports: [{name: http, port: 80, targetPort: 18081}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector: {matchLabels: {app: api}}
  jwtRules:
  - issuer: https://issuer.example.com
    jwksUri: JWKS_URI
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext}
spec:
  selector: {matchLabels: {app: api}}
  action: CUSTOM
  provider: {name: opa}
  rules: [{to: [{operation: {paths: ["/private/*"]}}]}]
`

// TestRunAuthz runs the control plane with a RequestAuthentication whose jwksUri is
// a local server: the key set is fetched, inlined into the sidecar's jwt_authn
// configuration, and re-fetched when it changes; the CUSTOM policy's authorizer
// gets a cluster.
func TestRunAuthz(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var keySet atomic.Value
	keySet.Store(`{"keys":[{"kty":"EC","kid":"first-key"}]}`)
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, keySet.Load().(string))
	}))
	defer jwksSrv.Close()

	dir := t.TempDir()
	meshFile := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte(strings.Replace(jwtMesh, "JWKS_URI", jwksSrv.URL+"/jwks", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var lis [3]net.Listener
	for i := range lis {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[i] = l
	}
	mon := "http://" + lis[2].Addr().String()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Config{
			ConfigFiles:        []string{meshFile},
			DataDir:            filepath.Join(dir, "data"),
			Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
			DebounceAfter:      10 * time.Millisecond,
			XDSListener:        lis[0],
			SecureXDSListener:  lis[1],
			MonitoringListener: lis[2],
			Authz: AuthzConfig{
				ExtAuthz:         []model.ExtAuthzProvider{{Name: "opa", Address: "127.0.0.1:9191"}},
				JWKSRefresh:      100 * time.Millisecond,
				JWKSAllowPrivate: true,
			},
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	poll(t, "/ready", func() bool { code, _ := get(ctx, t, mon+"/ready"); return code == http.StatusOK })

	conn, err := grpc.NewClient(lis[0].Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node, err := bootstrap.Node{ID: "api.default", Cluster: "api", Metadata: bootstrap.Metadata{
		Workload: "api", Namespace: "default", Service: "api", Labels: map[string]string{"app": "api"}, Authz: true,
		Ports: []bootstrap.Port{{Name: "http", Port: 80, Protocol: "HTTP", Target: "127.0.0.1:18081", Inbound: "127.0.0.1:2"}},
	}}.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	c := &sotw{stream: stream, node: node, names: map[string][]string{}, last: map[string]*discoveryv3.DiscoveryResponse{}}
	if err := c.request(resource.ClusterType, "", ""); err != nil {
		t.Fatal(err)
	}
	got := c.clusters(t, func(n []string) bool { return len(n) > 0 })
	if !strings.Contains(strings.Join(got, " "), "extauthz|opa") {
		t.Errorf("clusters %v lack the external authorizer's", got)
	}

	resources := func() string {
		_, body := get(ctx, t, mon+"/debug/xds?node=api.default")
		return body
	}
	poll(t, "the fetched key set in the sidecar's jwt_authn", func() bool { return strings.Contains(resources(), "first-key") })
	keySet.Store(`{"keys":[{"kty":"EC","kid":"second-key"}]}`)
	poll(t, "the refreshed key set", func() bool { return strings.Contains(resources(), "second-key") })
}

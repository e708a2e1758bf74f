package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/bootstrap"
)

const echoMesh = `apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo}
spec:
  service: echo
  ports: [{name: http, port: 80, targetPort: 18081}]
`

const otherWorkload = `---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: other}
spec:
  service: other
  ports: [{name: http, port: 8080, targetPort: 18082}]
`

// sotw is a small State of the World ADS client that ACKs every response.
type sotw struct {
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	names  map[string][]string // resource names each type subscribes to
	// last is the latest response of each type.
	last map[string]*discoveryv3.DiscoveryResponse
}

func (c *sotw) request(typeURL, version, nonce string) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: c.names[typeURL], VersionInfo: version, ResponseNonce: nonce, Node: c.node}
	return c.stream.Send(req)
}

// clusters waits for a Cluster response satisfying cond and returns its names.
func (c *sotw) clusters(t *testing.T, cond func([]string) bool) []string {
	t.Helper()
	for {
		if r := c.last[resource.ClusterType]; r != nil {
			if got := resourceNames(t, r); cond(got) {
				return got
			}
		}
		resp, err := c.stream.Recv()
		if err != nil {
			t.Fatalf("waiting for clusters: %v", err)
		}
		c.last[resp.GetTypeUrl()] = resp
		if err := c.request(resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce()); err != nil {
			t.Fatal(err)
		}
	}
}

// echoNode is the xDS node of the echo workload of echoMesh.
func echoNode(t *testing.T) *corev3.Node {
	t.Helper()
	node, err := bootstrap.Node{ID: "echo.default", Cluster: "echo", Metadata: bootstrap.Metadata{
		Workload: "echo", Namespace: "default", Service: "echo", Outbound: "127.0.0.1:1",
		Ports: []bootstrap.Port{{Name: "http", Port: 80, Protocol: "HTTP", Target: "127.0.0.1:18081", Inbound: "127.0.0.1:2"}},
	}}.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	return node
}

func resourceNames(t *testing.T, r *discoveryv3.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.(interface{ GetName() string }).GetName())
	}
	slices.Sort(out)
	return out
}

func get(ctx context.Context, t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// poll calls cond every 10ms until it holds, failing the test after 10s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	meshFile := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte(echoMesh), 0o644); err != nil {
		t.Fatal(err)
	}
	xdsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	monLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secureLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mon := "http://" + monLis.Addr().String()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Config{
			ConfigFiles:        []string{meshFile},
			DataDir:            filepath.Join(dir, "data"),
			Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
			DebounceAfter:      10 * time.Millisecond,
			XDSListener:        xdsLis,
			SecureXDSListener:  secureLis,
			MonitoringListener: monLis,
		})
	}()
	finished := false
	shutdown := func() {
		if finished {
			return
		}
		finished = true
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	defer shutdown()

	poll(t, "/ready", func() bool { code, _ := get(ctx, t, mon+"/ready"); return code == http.StatusOK })

	conn, err := grpc.NewClient(xdsLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := echoNode(t)
	c := &sotw{stream: stream, node: node, names: map[string][]string{}, last: map[string]*discoveryv3.DiscoveryResponse{}}
	if err := c.request(resource.ClusterType, "", ""); err != nil {
		t.Fatal(err)
	}
	got := c.clusters(t, func([]string) bool { return true })
	want := []string{"inbound|80||", "outbound|80||echo.default.svc.cluster.local"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}

	// A valid edit adds a service: pushed.
	if err := os.WriteFile(meshFile, []byte(echoMesh+otherWorkload), 0o644); err != nil {
		t.Fatal(err)
	}
	got = c.clusters(t, func(n []string) bool { return len(n) == 3 })
	want = append(want, "outbound|8080||other.default.svc.cluster.local")
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("clusters after the edit (-want +got):\n%s", diff)
	}

	// A broken edit changes nothing and is reported.
	if err := os.WriteFile(meshFile, []byte(echoMesh+otherWorkload+"  bogus: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var debug struct {
		SourceErrors []string `json:"sourceErrors"`
		Mesh         struct {
			Services []struct{ FQDN string }
		}
		Proxies map[string]json.RawMessage
	}
	poll(t, "the broken file to be reported", func() bool {
		_, body := get(ctx, t, mon+"/debug/config")
		return json.Unmarshal([]byte(body), &debug) == nil && len(debug.SourceErrors) > 0
	})
	if len(debug.Mesh.Services) != 2 || len(debug.Proxies) != 1 {
		t.Errorf("/debug/config after a broken edit: %d services, %d proxies; want 2 and 1", len(debug.Mesh.Services), len(debug.Proxies))
	}
	if !strings.Contains(strings.Join(debug.SourceErrors, "\n"), "mesh.yaml:") {
		t.Errorf("source errors do not name the file and line: %q", debug.SourceErrors)
	}

	_, metrics := get(ctx, t, mon+"/metrics")
	for _, m := range []string{"trellis_xds_connected_proxies 1", "trellis_xds_pushes_total{type=\"Cluster\"}", "trellis_translation_duration_seconds_count"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	if code, body := get(ctx, t, mon+"/debug/xds?node=echo.default"); code != http.StatusOK || !strings.Contains(body, "outbound|8080||other") {
		t.Errorf("/debug/xds?node=echo.default = %d %.200s", code, body)
	}

	// A Sidecar that sees echo only: other's cluster is withdrawn.
	sidecar := "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\nspec:\n  egress:\n  - hosts: [./echo.default.svc.cluster.local]\n"
	if err := os.WriteFile(meshFile, []byte(echoMesh+otherWorkload+sidecar), 0o644); err != nil {
		t.Fatal(err)
	}
	got = c.clusters(t, func(n []string) bool { return len(n) == 2 })
	if diff := cmp.Diff([]string{"inbound|80||", "outbound|80||echo.default.svc.cluster.local"}, got); diff != "" {
		t.Errorf("clusters with a Sidecar (-want +got):\n%s", diff)
	}

	// Stopping with a sidecar connected is prompt: its stream is ended.
	start := time.Now()
	shutdown()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("stopping with an open stream took %v", took)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break // pending responses drained, then the end of the stream
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the stream ended %v after stopping", took)
	}
}

func TestRunRejectsBadStart(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "no files", cfg: Config{}, want: "no config files"},
		{name: "xDS address in use", cfg: Config{ConfigFiles: []string{"x.yaml"}, XDSAddr: "bad address"}, want: "listening for xDS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tt.cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			err := Run(ctx, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

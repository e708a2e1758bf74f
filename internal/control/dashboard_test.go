package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/dashboard"
)

// The dashboard scrapes a sidecar registered over ADS at the metrics address its
// node metadata announces.
func TestRunDashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	meshFile := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshFile, []byte(echoMesh), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	xdsLis, dashLis := listen(), listen()
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# TYPE trellis_requests_total counter\ntrellis_requests_total{reporter=\"destination\"} 1\n")
	}))
	defer metrics.Close()

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Config{
			ConfigFiles: []string{meshFile}, DataDir: filepath.Join(dir, "data"),
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
			DebounceAfter: 10 * time.Millisecond, Warmup: -1,
			XDSListener: xdsLis, SecureXDSListener: listen(), MonitoringListener: listen(), DashboardListener: dashLis,
			DashboardScrapeInterval: 50 * time.Millisecond,
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	conn, err := grpc.NewClient(xdsLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node, err := bootstrap.Node{ID: "echo.default", Cluster: "echo", Metadata: bootstrap.Metadata{
		Workload: "echo", Namespace: "default", Service: "echo", Metrics: metrics.Listener.Addr().String(),
	}}.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, Node: node}); err != nil {
		t.Fatal(err)
	}

	url := "http://" + dashLis.Addr().String() + "/api/sidecars"
	var last string
	poll(t, "the dashboard scraping the registered sidecar", func() bool {
		code, body := get(ctx, t, url)
		last = body
		var resp dashboard.SidecarsResponse
		if code != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil || len(resp.Sidecars) != 1 {
			return false
		}
		s := resp.Sidecars[0]
		return s.Node == "echo.default" && s.Metrics == metrics.Listener.Addr().String() && !s.LastScrape.IsZero() && s.Error == ""
	})
	if code, body := get(ctx, t, "http://"+dashLis.Addr().String()+"/"); code != http.StatusOK {
		t.Errorf("GET /: %d %s (sidecars: %s)", code, body, last)
	}
}

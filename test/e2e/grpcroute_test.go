package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// grpcEchoApp is a Workload of service grpc-echo, labels app=grpc-echo and version:
// fortio's gRPC server (which serves grpc.health.v1) on service port 8079.
func grpcEchoApp(name, version string) string {
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: %s, labels: {app: grpc-echo, version: %s}}
spec:
  service: grpc-echo
  ports: [{name: grpc, port: 8079, protocol: GRPC}]
  command: %s
---
apiVersion: v1
kind: Service
metadata: {name: grpc-echo-%s}
spec:
  selector: {app: grpc-echo, version: %s}
  ports: [{name: grpc, port: 8079, appProtocol: grpc}]
`, name, version, fortioServer("", "$(PORT)", ""), version, version)
}

// Gateway API in mesh mode for gRPC: a GRPCRoute whose parent is the Service
// grpc-echo sends calls of one method with a header to v2 and splits the others
// 80/20 by backendRef weights. gRPC answers carry no version: calls are counted at
// each version's sidecar.
func TestGRPCRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, grpcEchoApp("grpc-v1", "v1")+grpcEchoApp("grpc-v2", "v2")+`---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-echo}
spec:
  parentRefs:
  - {group: "", kind: Service, name: grpc-echo, port: 8079}
  rules:
  - matches:
    - method: {service: grpc.health.v1.Health, method: Check}
      headers: [{name: x-canary, value: "yes"}]
    backendRefs: [{name: grpc-echo-v2, port: 8079}]
  - backendRefs:
    - {name: grpc-echo-v1, port: 8079, weight: 80}
    - {name: grpc-echo-v2, port: 8079, weight: 20}
`)
	conn, err := grpc.NewClient("passthrough:///"+m.outbound,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("grpc-echo:8079"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "yes")
	check := func(ctx context.Context) error {
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			err = fmt.Errorf("status %s", resp.GetStatus())
		}
		return err
	}
	calls := func(ctx context.Context, n int) func() error {
		return func() error {
			for range n {
				if err := check(ctx); err != nil {
					return err
				}
			}
			return nil
		}
	}
	apps := []workloadState{m.st.workload(t, "grpc-v1"), m.st.workload(t, "grpc-v2")}
	eventually(ctx, t, "calls reaching both versions", func() error {
		if err := calls(ctx, 10)(); err != nil {
			return err
		}
		for _, w := range apps {
			if n, err := inboundRequests(ctx, w); err != nil || n == 0 {
				return fmt.Errorf("%s: %d calls, %v", w.Name, n, err)
			}
		}
		return nil
	})

	t.Run("method and header match", func(t *testing.T) {
		got := served(ctx, t, apps, 30, calls(canary, 30))
		if got["grpc-v2"] != 30 || got["grpc-v1"] != 0 {
			t.Errorf("30 canary calls reached %v; want all at grpc-v2", got)
		}
	})
	t.Run("weighted backendRefs", func(t *testing.T) {
		got := served(ctx, t, apps, 200, calls(ctx, 200))
		if share := 100 * float64(got["grpc-v1"]) / 200; share < 65 || share > 92 {
			t.Errorf("200 calls reached %v; grpc-v1 took %.0f%%, want about 80%% (65..92)", got, share)
		}
	})
}

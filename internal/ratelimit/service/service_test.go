package service_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/ratelimit/internal/redistest"
	"trellis.dev/trellis/internal/ratelimit/redisstore"
	"trellis.dev/trellis/internal/ratelimit/service"
)

func policyYAML(requests string) string {
	return `apiVersion: trellis.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: checkout, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: checkout}]
  rules:
  - scope: Global
    limit: {requests: ` + requests + `, per: 1h}
`
}

// running is a service started by start.
type running struct {
	addr, monitoring string
	done             chan error
}

func start(t *testing.T, cfg service.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{done: make(chan error, 1)}
	ready := make(chan struct{})
	cfg.Addr, cfg.MonitoringAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Ready = func(addr, monitoring string) {
		r.addr, r.monitoring = addr, monitoring
		close(ready)
	}
	go func() { r.done <- service.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	select {
	case <-ready:
	case err := <-r.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not become ready")
	}
	return r
}

func checkOnce(t *testing.T, addr string) *rlsv3.RateLimitResponse {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{
		Domain: "trellis",
		Descriptors: []*commonrlv3.RateLimitDescriptor{{
			Entries: []*commonrlv3.RateLimitDescriptor_Entry{{Key: "policy", Value: "shop/checkout/0"}},
		}},
	})
	if err != nil {
		t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRunReloadsPolicies(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T) service.Config
	}{
		{name: "memory", store: func(*testing.T) service.Config { return service.Config{Store: service.StoreMemory} }},
		{name: "redis", store: func(t *testing.T) service.Config {
			return service.Config{Store: service.StoreRedis, Redis: redisstore.Config{Addr: redistest.Start(t).Addr}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "limits.yaml")
			writeFile(t, path, policyYAML("100"))
			cfg := tt.store(t)
			cfg.ConfigFiles = []string{path}
			r := start(t, cfg)

			if got := checkOnce(t, r.addr).Statuses[0].GetCurrentLimit().GetRequestsPerUnit(); got != 100 {
				t.Fatalf("limit %d, want 100", got)
			}
			writeFile(t, path, policyYAML("7"))
			for deadline := time.Now().Add(10 * time.Second); ; {
				if checkOnce(t, r.addr).Statuses[0].GetCurrentLimit().GetRequestsPerUnit() == 7 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the edited limit was not applied")
				}
				time.Sleep(20 * time.Millisecond) // polling with a deadline
			}

			resp, err := http.Get("http://" + r.monitoring + "/metrics")
			if err != nil {
				t.Fatalf("GET /metrics: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `trellis_ratelimit_decisions_total{domain="trellis",result="OK"}`) {
				t.Errorf("/metrics lacks the decisions:\n%s", body)
			}
		})
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.yaml")
	writeFile(t, path, policyYAML("0"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := service.Run(ctx, service.Config{Addr: "127.0.0.1:0", ConfigFiles: []string{path}})
	if err == nil || !strings.Contains(err.Error(), "spec.rules[0].limit.requests: required: at least 1") {
		t.Errorf("Run = %v, want the file's problem", err)
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// trafficMesh has an HTTP service in two versions, an HTTP/2 service, a gRPC
// service, a TCP service and a client-only workload with a fixed outbound address
// and a TCP upstream.
const trafficMesh = `
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}}
spec:
  service: echo
  ports: [{name: http, port: 8080}]
  command: ` + `{{.EchoV1}}` + `
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v2, labels: {app: echo, version: v2}}
spec:
  service: echo
  ports: [{name: http, port: 8080, protocol: HTTP}]
  command: ` + `{{.EchoV2}}` + `
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: h2echo}
spec:
  service: h2echo
  ports: [{name: http2, port: 8080, protocol: HTTP2}]
  command: ` + `{{.H2}}` + `
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: grpc-echo}
spec:
  service: grpc-echo
  ports: [{name: grpc, port: 8079, protocol: grpc}]
  command: ` + `{{.GRPC}}` + `
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: tcp-echo}
spec:
  service: tcp-echo
  ports: [{name: tcp, port: 9000, protocol: TCP}]
  command: ["{{.Fortio}}", "tcp-echo", "-loglevel", "Warning", "-tcp-port", "127.0.0.1:$(PORT)"]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: client}
spec:
  outbound: {{.Outbound}}
  upstreams:
  - {service: tcp-echo, port: 9000, bind: "{{.TCPBind}}"}
`

func TestTraffic(t *testing.T) {
	tests := []struct {
		name  string
		extra []string // more `trellis up` flags
	}{
		{name: "state of the world xDS"},
		{name: "delta xDS", extra: []string{"--delta-xds"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testTraffic(t, tt.extra) })
	}
}

func testTraffic(t *testing.T, extra []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outbound, tcpBind := freeAddr(t), freeAddr(t)
	mesh := render(t, trafficMesh, map[string]string{
		"EchoV1":   fortioServer("$(PORT)", "", `"-echo-server-default-params", "header=X-Version:v1"`),
		"EchoV2":   fortioServer("$(PORT)", "", `"-echo-server-default-params", "header=X-Version:v2"`),
		"H2":       fortioServer("$(PORT_HTTP2)", "", ""),
		"GRPC":     fortioServer("", "$(PORT)", ""),
		"Outbound": outbound,
		"TCPBind":  tcpBind,
	})
	up, _ := startUp(t, mesh, extra...)
	st := up.waitState(ctx, t, 6)
	if got := st.workload(t, "client").Outbound; got != outbound {
		t.Fatalf("client outbound = %s, want the fixed %s", got, outbound)
	}

	t.Run("http proxy form reaches both versions", func(t *testing.T) {
		c := proxyClient(outbound)
		// Endpoints register as sidecars connect: wait until both versions answer.
		seen := map[string]bool{}
		eventually(ctx, t, "both echo versions", func() error {
			resp, _, err := get(ctx, c, "http://echo:8080/", "")
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			seen[resp.Header.Get("X-Version")] = true
			if !seen["v1"] || !seen["v2"] {
				return fmt.Errorf("versions seen: %v", seen)
			}
			return nil
		})
		counts := map[string]int{}
		for i := range 100 {
			resp, _, err := get(ctx, c, "http://echo:8080/", "")
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d: status %s", i, resp.Status)
			}
			counts[resp.Header.Get("X-Version")]++
		}
		if counts["v1"] == 0 || counts["v2"] == 0 || counts["v1"]+counts["v2"] != 100 {
			t.Errorf("100 requests reached versions %v, want both and nothing else", counts)
		}
		// Round robin over two endpoints: about half each.
		if counts["v1"] < 25 || counts["v2"] < 25 {
			t.Errorf("100 requests reached versions %v, want them balanced round robin", counts)
		}
	})

	t.Run("host header form", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second}
		eventually(ctx, t, "an answer to the Host header form", func() error {
			resp, _, err := get(ctx, c, "http://"+outbound+"/", "echo:8080")
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Version") == "" {
				return fmt.Errorf("status %s, X-Version %q", resp.Status, resp.Header.Get("X-Version"))
			}
			return nil
		})
	})

	t.Run("service names", func(t *testing.T) {
		c := proxyClient(outbound)
		for _, host := range []string{"echo", "echo:8080", "echo.default:8080", "echo.default.svc:8080", "echo.default.svc.cluster.local:8080", "ECHO.Default:8080"} {
			t.Run(host, func(t *testing.T) {
				eventually(ctx, t, "an answer for "+host, func() error {
					resp, _, err := get(ctx, c, "http://"+host+"/", "")
					if err != nil {
						return err
					}
					if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Version") == "" {
						return fmt.Errorf("status %s, X-Version %q", resp.Status, resp.Header.Get("X-Version"))
					}
					return nil
				})
			})
		}
		resp, _, err := get(ctx, c, "http://nosuchservice:8080/", "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown service: status %s, want 404", resp.Status)
		}
	})

	t.Run("h2c prior knowledge end to end", func(t *testing.T) {
		// HTTP/2 without TLS to the outbound listener, whatever the URL's host says.
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, outbound)
			},
		}}
		eventually(ctx, t, "an HTTP/2 answer from h2echo", func() error {
			resp, body, err := get(ctx, c, "http://h2echo:8080/debug", "")
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				return fmt.Errorf("status %s over %s", resp.Status, resp.Proto)
			}
			// fortio's /debug echoes the request line as the app received it.
			if !strings.Contains(body, "GET /debug HTTP/2.0") {
				return fmt.Errorf("the app did not receive HTTP/2:\n%s", body)
			}
			return nil
		})
	})

	t.Run("grpc health check", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///"+outbound,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority("grpc-echo:8079"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := healthpb.NewHealthClient(conn)
		eventually(ctx, t, "a SERVING health check through the mesh", func() error {
			callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("status %s", resp.GetStatus())
			}
			return nil
		})
	})

	t.Run("sidecar admin", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second}
		admin := st.workload(t, "client").Admin
		for _, path := range []string{"/ready", "/config_dump", "/stats"} {
			resp, body, err := get(ctx, c, "http://"+admin+path, "")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || body == "" {
				t.Errorf("%s: status %s, %d bytes", path, resp.Status, len(body))
			}
		}
	})

	t.Run("tcp through an upstream", func(t *testing.T) {
		eventually(ctx, t, "bytes echoed through the upstream", func() error {
			return tcpEcho(ctx, tcpBind, "hello through the mesh\n")
		})
	})
}

// tcpEcho sends msg to addr and expects it back.
func tcpEcho(ctx context.Context, addr, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if string(got) != msg {
		return fmt.Errorf("echoed %q, want %q", got, msg)
	}
	return nil
}

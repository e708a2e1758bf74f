package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startOutside runs a fortio server that is not part of the mesh (no sidecar):
// HTTP on httpAddr, whose answers carry X-Version: outside, and TCP echo on
// tcpAddr. It stops when the test ends.
func startOutside(ctx context.Context, t *testing.T, httpAddr, tcpAddr string) {
	t.Helper()
	cmd := exec.Command(fortioBin, "server", "-loglevel", "Warning", "-http-port", httpAddr, "-tcp-port", tcpAddr,
		"-grpc-port", "disabled", "-redirect-port", "disabled", "-udp-port", "disabled",
		"-echo-server-default-params", "header=X-Version:outside")
	cmd.Dir = t.TempDir() // fortio writes its data directory here
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting fortio outside the mesh: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("fortio outside the mesh:\n%s", tail(out.String(), 30))
		}
	})
	direct := &http.Client{Timeout: 2 * time.Second}
	eventually(ctx, t, "fortio outside the mesh", func() error {
		resp, _, err := get(ctx, direct, "http://"+httpAddr+"/", "")
		if err == nil && resp.Header.Get("X-Version") != "outside" {
			err = fmt.Errorf("status %s, X-Version %q", resp.Status, resp.Header.Get("X-Version"))
		}
		return err
	})
}

// A ServiceEntry makes a server outside the mesh reachable through the sidecar, by
// HTTP through the outbound listener and by TCP through an upstream bind, and the
// mesh's rules apply to it.
func TestServiceEntry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	httpAddr, tcpAddr, bind := freeAddr(t), freeAddr(t), freeAddr(t)
	startOutside(ctx, t, httpAddr, tcpAddr)
	_, httpPort, _ := net.SplitHostPort(httpAddr)
	_, tcpPort, _ := net.SplitHostPort(tcpAddr)
	m := startMesh(ctx, t, fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: outside-api}
spec:
  hosts: [api.outside.test]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %s}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: outside-echo}
spec:
  hosts: [echo.outside.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %s}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: outside-api}
spec:
  hosts: [api.outside.test]
  http:
  - match: [{uri: {prefix: /teapot}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: api.outside.test}}]
  - headers: {response: {set: {x-through: trellis}}}
    route: [{destination: {host: api.outside.test}}]
`, httpPort, tcpPort), fmt.Sprintf("{service: echo.outside.test, port: 9000, bind: %q}", bind))

	t.Run("http through the outbound listener", func(t *testing.T) {
		for _, target := range []string{"http://api.outside.test/", "http://api.outside.test:80/"} {
			eventually(ctx, t, "an answer from outside for "+target, func() error {
				a, err := do(ctx, m.c, request{target: target})
				if err != nil {
					return err
				}
				if a.status != http.StatusOK || a.version != "outside" || a.header.Get("X-Through") != "trellis" {
					return fmt.Errorf("status %d, headers %v", a.status, a.header)
				}
				return nil
			})
		}
	})
	t.Run("rules apply", func(t *testing.T) {
		a, err := do(ctx, m.c, request{target: "http://api.outside.test/teapot"})
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusTeapot {
			t.Errorf("status %d, want the fault's 418", a.status)
		}
	})
	t.Run("tcp through an upstream bind", func(t *testing.T) {
		eventually(ctx, t, "bytes echoed from outside", func() error {
			return tcpEcho(ctx, bind, "hello outside\n")
		})
	})
}

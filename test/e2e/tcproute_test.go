package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Istio's "TCP traffic shifting" task: a VirtualService tcp route sends 80% of the
// connections to v1 and 20% to v2. Connections are counted at each version's
// sidecar.
func TestTCPTrafficShifting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bind := freeAddr(t)
	// The upstream names the service as name.namespace.
	m := startMesh(ctx, t, tcpEchoApp("tcp-echo-v1", "tcp-echo", "v1")+tcpEchoApp("tcp-echo-v2", "tcp-echo", "v2")+
		versionSubsets("tcp-echo")+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9000}]
    route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}
`, fmt.Sprintf("{service: tcp-echo.default, port: 9000, bind: %q}", bind))
	v1, v2 := m.st.workload(t, "tcp-echo-v1"), m.st.workload(t, "tcp-echo-v2")
	connections := func() (uint64, uint64, error) {
		n1, err := statSum(ctx, v1, "listener.inbound|9000.", ".tcp_connections_total")
		if err != nil {
			return 0, 0, err
		}
		n2, err := statSum(ctx, v2, "listener.inbound|9000.", ".tcp_connections_total")
		return n1, n2, err
	}
	eventually(ctx, t, "connections echoed by both versions", func() error {
		if err := tcpEcho(ctx, bind, "hello\n"); err != nil {
			return err
		}
		n1, n2, err := connections()
		if err == nil && (n1 == 0 || n2 == 0) {
			err = fmt.Errorf("connections: v1 %d, v2 %d", n1, n2)
		}
		return err
	})

	before1, before2, err := connections()
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := tcpEcho(ctx, bind, fmt.Sprintf("connection %d\n", i)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	var d1, d2 uint64
	eventually(ctx, t, fmt.Sprintf("%d connections counted", n), func() error {
		n1, n2, err := connections()
		if err != nil {
			return err
		}
		if d1, d2 = n1-before1, n2-before2; d1+d2 != n {
			return fmt.Errorf("v1 %d, v2 %d", d1, d2)
		}
		return nil
	})
	if share := 100 * float64(d1) / n; share < 65 || share > 92 {
		t.Errorf("%d connections: v1 %d, v2 %d; v1 took %.0f%%, want about 80%% (65..92)", n, d1, d2, share)
	}
}

package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"trellis.dev/trellis/internal/serverlimits"
	"trellis.dev/trellis/internal/serverlimits/attacktest"
)

// TestHostileInputLocalMode sends the HTTP/1.1 attack catalogue (smuggling, malformed
// heads, oversized headers, truncated bodies) to the real sidecar processes of
// `trellis up`: the client's outbound listener, the server's inbound listener and
// both admin servers, and garbage to the control plane's xDS port. Every attack is
// refused with its 4xx and a closed connection, every process is still running after,
// and the mesh still carries traffic. (The sidecars run with the default limits: a
// body that stalls is cut at the 5-minute idle timeout, which the in-process tests
// of internal/proxy check with a short one.)
func TestHostileInputLocalMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1"))
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/"}, 200, "v1")
	echo, client := m.st.workload(t, "echo-v1"), m.st.workload(t, "client")

	start := time.Now()
	refused := attacktest.CheckHTTP1(t, "client outbound", m.outbound, nil, "echo:8080", serverlimits.DefaultIdleTimeout) +
		attacktest.CheckHTTP1(t, "echo inbound", echo.Inbound, nil, "echo:8080", serverlimits.DefaultIdleTimeout) +
		attacktest.CheckHTTP1(t, "client admin", client.Admin, nil, "admin", serverlimits.DefaultIdleTimeout) +
		attacktest.CheckHTTP1(t, "echo admin", echo.Admin, nil, "admin", serverlimits.DefaultIdleTimeout)
	for _, raw := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01\x00\x40" + string(make([]byte, 64))} {
		if res, err := attacktest.Exchange(m.st.ControlPlane.XDS, nil, raw, 10*time.Second); err != nil || !res.Closed {
			t.Errorf("garbage to the xDS port: %+v, %v; want the connection closed", res, err)
		}
	}
	for _, pid := range []int{m.st.ControlPlane.PID, client.ProxyPID, echo.ProxyPID, echo.PID} {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("process %d after the attacks: %v", pid, err)
		}
	}
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/"}, 200, "v1")
	t.Logf("local mode: %d attacks refused on 4 sidecar listeners in %v; control plane and sidecars still running and serving",
		refused, time.Since(start).Round(time.Millisecond))
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Protocol detection: a v1/Service whose ports declare no protocol (no appProtocol,
// no http-/tcp- name prefix). Requests through the client's outbound listener are
// HTTP and reach fortio's HTTP server through an inbound listener that detects
// HTTP; bytes through an upstream bind reach fortio's TCP echo server through one
// that detects "not HTTP" and carries them as TCP. The sidecars take part in mutual
// TLS (PERMISSIVE), so the server sidecar tells them apart by the ALPN its peer
// negotiated.
func TestProtocolDetection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bind := freeAddr(t)
	m := startMesh(ctx, t, fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports:
  - {name: web, port: 8080}
  - {name: stream, port: 9000}
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-web, labels: {app: echo, version: v1}}
spec:
  ports: [{name: web, port: 8080}]
  command: %s
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-stream, labels: {app: echo, version: v1}}
spec:
  ports: [{name: stream, port: 9000}]
  command: [%q, "tcp-echo", "-loglevel", "Warning", "-tcp-port", "127.0.0.1:$(PORT)"]
`, fortioServer("$(PORT)", "", `"-echo-server-default-params", "header=X-Version:v1"`), fortioBin),
		fmt.Sprintf("{service: echo, port: 9000, bind: %q}", bind))
	web, stream := m.st.workload(t, "echo-web"), m.st.workload(t, "echo-stream")

	t.Run("HTTP", func(t *testing.T) {
		waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/"}, http.StatusOK, "v1")
		tl, err := send(ctx, m.c, request{target: "http://echo:8080/"}, 20)
		if err != nil {
			t.Fatal(err)
		}
		if tl.status[http.StatusOK] != 20 {
			t.Errorf("20 requests: %v; want 20 × 200", tl)
		}
		// The server sidecar served them as HTTP: it counted requests, not bytes.
		n, err := statSum(ctx, web, "listener.inbound|8080.", "rq_2xx")
		if err != nil {
			t.Fatal(err)
		}
		if n < 20 {
			t.Errorf("inbound|8080 counted %d 2xx requests, want at least 20 (the port detected HTTP)", n)
		}
		if tcp, _ := statSum(ctx, web, "listener.inbound|8080", ".tcp_connections_total"); tcp != 0 {
			t.Errorf("inbound|8080 carried %d TCP connections, want none", tcp)
		}
	})

	t.Run("TCP", func(t *testing.T) {
		eventually(ctx, t, "an echo through the upstream bind", func() error { return tcpEcho(ctx, bind, "hello\n") })
		for i := range 10 {
			if err := tcpEcho(ctx, bind, fmt.Sprintf("connection %d\n", i)); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		eventually(ctx, t, "TCP connections counted by the server sidecar", func() error {
			n, err := statSum(ctx, stream, "listener.inbound|9000", ".tcp_connections_total")
			if err == nil && n < 11 {
				err = fmt.Errorf("inbound|9000 carried %d TCP connections, want at least 11", n)
			}
			return err
		})
	})
}

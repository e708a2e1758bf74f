package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// startHTTP1Sidecar starts a sidecar whose outbound listener routes host "echo" to
// an app serving h, and returns the listener's address.
func startHTTP1Sidecar(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	outbound := freeAddr(t)
	app := startApp(t, h, false)
	appCluster := names.OutboundCluster(echoFQDN, 80)
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	xds.Set(t, serverNode, "1",
		xdstest.HTTPListener(names.OutboundListener, outbound, names.OutboundRoute),
		xdstest.RouteConfig(names.OutboundRoute, xdstest.VirtualHost(echoFQDN+":80", []string{"echo"}, appCluster)),
		xdstest.StaticCluster(appCluster, false, hostOf(app.URL)),
	)
	runProxy(t, &bootstrap.Bootstrap{
		Node:    bootstrap.Node{ID: serverNode, Cluster: "echo", Metadata: bootstrap.Metadata{Workload: serverNode, Namespace: "default"}},
		XDS:     xds.Addr,
		Admin:   "127.0.0.1:0",
		Metrics: "127.0.0.1:0",
	})
	eventually(t, 10*time.Second, "sidecar serving", func() error {
		return expect(http.DefaultClient, "http://"+outbound+"/ready", "echo", 200, "ready")
	})
	return outbound
}

// dialRaw opens a connection with a 10s deadline.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// TestHTTP1ThroughListener runs what the sidecar's HTTP/1.x loop does beyond plain
// requests through an outbound listener to an app: a protocol upgrade (101, then
// bytes both ways), "Expect: 100-continue", and a client that leaves while its
// request is served, which cancels the app's request.
func TestHTTP1ThroughListener(t *testing.T) {
	waiting, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	addr := startHTTP1Sidecar(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ready":
			io.WriteString(w, "ready")
		case "/upgrade":
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("app hijack: %v", err)
				return
			}
			defer c.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			brw.Flush()
			line, _ := brw.ReadString('\n')
			brw.WriteString("echo: " + line)
			brw.Flush()
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case "/wait":
			waiting <- struct{}{}
			select {
			case <-r.Context().Done():
				cancelled <- struct{}{}
			case <-time.After(10 * time.Second):
			}
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		io.WriteString(c, "GET /upgrade HTTP/1.1\r\nHost: echo\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade answer: %v, %v; want 101", resp, err)
		}
		io.WriteString(c, "ping\n")
		if line, err := br.ReadString('\n'); line != "echo: ping\n" {
			t.Errorf("through the upgraded connection: %q, %v; want %q", line, err, "echo: ping\n")
		}
	})

	t.Run("100-continue", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: echo\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("before the body: %q, %v; want a 100 Continue", line, err)
		}
		for line != "\r\n" && err == nil {
			line, err = br.ReadString('\n')
		}
		io.WriteString(c, "hello")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		for resp.StatusCode == http.StatusContinue { // the app's, forwarded
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "hello" {
			t.Errorf("answer: %d %q; want 200 %q", resp.StatusCode, b, "hello")
		}
	})

	t.Run("client leaves", func(t *testing.T) {
		c, _ := dialRaw(t, addr)
		io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: echo\r\n\r\n")
		// The request reached the app: the client goes. The sidecar notices once the
		// request has run for its watch delay, and cancels the upstream request.
		<-waiting
		c.Close()
		select {
		case <-cancelled:
		case <-time.After(8 * time.Second):
			t.Error("the app's request was not cancelled after the client left")
		}
	})
}

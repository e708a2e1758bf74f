package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/serverlimits"
	"trellis.dev/trellis/internal/serverlimits/attacktest"
)

// hostileLimits are the sidecar's limits in these tests: the defaults, with timeouts
// short enough for a test to see them act and a connection limit a test can reach.
func hostileLimits() serverlimits.Limits {
	return serverlimits.Limits{HeaderTimeout: 500 * time.Millisecond, IdleTimeout: time.Second,
		HandshakeTimeout: 500 * time.Millisecond, MaxConnections: 64}
}

// hostileSidecar is one sidecar with an outbound and an inbound HTTP listener in
// front of a recording app, and its admin and metrics servers.
type hostileSidecar struct {
	p                 *Proxy
	outbound, inbound string
	app               *recordingApp
	appServer         *httptest.Server
}

// recordingApp records the paths it is asked for and reads request bodies whole.
type recordingApp struct {
	mu    sync.Mutex
	paths []string
}

func (a *recordingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, err := io.Copy(io.Discard, r.Body)
	a.mu.Lock()
	a.paths = append(a.paths, r.URL.Path)
	a.mu.Unlock()
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "ok")
}

func (a *recordingApp) saw(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, p := range a.paths {
		if p == path {
			n++
		}
	}
	return n
}

func startHostileSidecar(t *testing.T, lim serverlimits.Limits) *hostileSidecar {
	t.Helper()
	h := &hostileSidecar{outbound: freeAddr(t), inbound: freeAddr(t), app: &recordingApp{}}
	app := startApp(t, h.app.ServeHTTP, true)
	h.appServer = app
	appCluster := names.OutboundCluster(echoFQDN, 80)
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	xds.Set(t, serverNode, "1",
		xdstest.HTTPListener(names.OutboundListener, h.outbound, names.OutboundRoute),
		xdstest.RouteConfig(names.OutboundRoute, xdstest.VirtualHost(echoFQDN+":80", []string{"echo"}, appCluster)),
		xdstest.StaticCluster(appCluster, false, hostOf(app.URL)),
		xdstest.InlineHTTPListener(names.InboundListener(80), h.inbound,
			xdstest.RouteConfig(names.InboundListener(80), xdstest.VirtualHost("inbound", []string{"*"}, names.InboundCluster(80)))),
		xdstest.StaticCluster(names.InboundCluster(80), false, hostOf(app.URL)),
	)
	b := &bootstrap.Bootstrap{
		Node:    bootstrap.Node{ID: serverNode, Cluster: "echo", Metadata: bootstrap.Metadata{Workload: serverNode, Namespace: "default"}},
		XDS:     xds.Addr,
		Admin:   "127.0.0.1:0",
		Metrics: "127.0.0.1:0",
	}
	p := runProxyLimited(t, b, lim)
	h.p = p
	eventually(t, 10*time.Second, "sidecar serving", func() error {
		return expect(http.DefaultClient, "http://"+h.outbound+"/", "echo", 200, "ok")
	})
	return h
}

// settleUpstream closes the app's side of the sidecar's pooled upstream
// connections: the pool is the mesh's state (up to 256 idle connections per cluster,
// kept for the cluster's idle timeout), not what an attack left behind.
func (h *hostileSidecar) settleUpstream() { h.appServer.CloseClientConnections() }

// listeners are the sidecar's HTTP listeners under attack, with the Host and path
// a well-behaved request uses.
func (h *hostileSidecar) listeners() []struct{ name, addr, host, path string } {
	return []struct{ name, addr, host, path string }{
		{"outbound", h.outbound, "echo", "/"},
		{"inbound", h.inbound, "echo", "/"},
		{"admin", h.p.AdminAddr(), "admin", "/ready"},
		{"metrics", h.p.MetricsAddr(), "metrics", "/healthz/ready"},
	}
}

// TestHostileHTTP1 speaks malformed and smuggling HTTP/1.1 to each of the
// sidecar's listeners: every one is refused with its 4xx and a closed connection,
// the app never sees a smuggled request, a well-behaved client is served after each,
// and goroutines and heap return to their baseline.
func TestHostileHTTP1(t *testing.T) {
	h := startHostileSidecar(t, hostileLimits())
	probe := attacktest.StartProbe()
	sent := 0
	for _, l := range h.listeners() {
		attacktest.CheckHTTP1(t, l.name+" listener", l.addr, nil, l.host, hostileLimits().IdleTimeout)
		sent += len(attacktest.HTTP1Attacks(l.host))
		if code, err := attacktest.Get(l.addr, nil, l.host, l.path); err != nil || code != 200 {
			t.Errorf("%s: well-behaved request after the attacks: %d, %v", l.name, code, err)
		}
	}
	if n := h.app.saw(attacktest.Smuggled); n != 0 {
		t.Errorf("the app saw %d smuggled requests", n)
	}

	// An idle keep-alive connection is closed at the idle timeout.
	idle, err := attacktest.Dial(h.outbound, nil, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if code, err := idle.Get("/"); code != 200 {
		t.Fatalf("keep-alive request: %d, %v", code, err)
	}
	start := time.Now()
	if err := idle.WaitClosed(10 * time.Second); err != nil {
		t.Errorf("idle connection: %v (idle timeout %v)", err, hostileLimits().IdleTimeout)
	}
	t.Logf("idle keep-alive connection closed after %v (idle timeout %v)", time.Since(start).Round(10*time.Millisecond), hostileLimits().IdleTimeout)
	h.settleUpstream()
	g, heap, err := probe.Settle(10*time.Second, 10, 16<<20)
	if err != nil {
		t.Error(err)
	}
	t.Logf("HTTP/1.1 attacks: %d requests sent, smuggled requests seen by the app: 0; %s; settled at %d goroutines, %d KiB", sent, probe, g, heap>>10)
}

// TestHostileConnections floods the outbound listener with idle connections beyond
// its limit, and with slowloris heads: connections beyond the limit are closed at
// once, slow heads at the header timeout, and an established client is served
// throughout.
func TestHostileConnections(t *testing.T) {
	lim := hostileLimits()
	lim.IdleTimeout = time.Minute // the established client idles between attacks
	h := startHostileSidecar(t, lim)
	probe := attacktest.StartProbe()
	good, err := attacktest.Dial(h.outbound, nil, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if code, err := good.Get("/"); code != 200 {
		t.Fatalf("well-behaved client before the flood: %d, %v", code, err)
	}

	const extra = 100
	flood := lim.MaxConnections - 1 + extra
	closed, release, err := attacktest.Flood(h.outbound, flood, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if closed < extra {
		t.Errorf("flood of %d connections: %d closed at once, want at least %d (limit %d, one held by the client)", flood, closed, extra, lim.MaxConnections)
	}
	for range 5 {
		if code, err := good.Get("/"); code != 200 {
			t.Errorf("established client during the flood: %d, %v", code, err)
		}
	}
	release()
	overflow := h.p.stats.Listener(names.OutboundListener).CxOverflow.Load()
	if overflow < extra {
		t.Errorf("downstream_cx_overflow = %d, want at least %d", overflow, extra)
	}
	t.Logf("connection flood: %d connections (limit %d): %d closed within the wait (refused, or idle past the header timeout), downstream_cx_overflow %d; the established client was served", flood, lim.MaxConnections, closed, overflow)
	eventually(t, 10*time.Second, "new connections accepted after the flood", func() error {
		_, err := attacktest.Get(h.outbound, nil, "echo", "/")
		return err
	})

	start := time.Now()
	slow, bytes, err := attacktest.Slowloris(h.outbound, 20, 50*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if slow != 20 {
		t.Errorf("slowloris: %d of 20 connections closed within 5s (header timeout %v)", slow, lim.HeaderTimeout)
	}
	if code, err := good.Get("/"); code != 200 {
		t.Errorf("established client after slowloris: %d, %v", code, err)
	}
	t.Logf("slowloris: 20 connections, %d bytes sent a byte at a time, %d closed after %v (header timeout %v)", bytes, slow, time.Since(start).Round(10*time.Millisecond), lim.HeaderTimeout)
	good.Close()
	h.settleUpstream()
	g, heap, err := probe.Settle(10*time.Second, 10, 16<<20)
	if err != nil {
		t.Error(err)
	}
	t.Logf("connections: %s; settled at %d goroutines, %d KiB", probe, g, heap>>10)
}

// TestHostileHTTP2 runs HTTP/2 frame-level attacks on the outbound listener (h2c
// with prior knowledge): each ends with the offending stream or connection refused,
// a well-behaved client is served after each, and goroutines and heap return to
// their baseline.
func TestHostileHTTP2(t *testing.T) {
	lim := hostileLimits().WithDefaults()
	h := startHostileSidecar(t, lim)
	probe := attacktest.StartProbe()
	goAway := func(r attacktest.H2Result, codes ...http2.ErrCode) bool {
		if r.GoAway == nil {
			return false
		}
		for _, c := range codes {
			if *r.GoAway == c {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name   string
		attack func() (attacktest.H2Result, error)
		check  func(r attacktest.H2Result) bool
		want   string
	}{
		{
			name:   "rapid reset",
			attack: func() (attacktest.H2Result, error) { return attacktest.RapidReset(h.outbound, 5000) },
			// Handlers run at most MaxConcurrentStreams at a time: the app sees a
			// fraction of the cancelled streams, or the connection is ended.
			check: func(r attacktest.H2Result) bool { return h.app.saw("/rapid-reset") < r.Sent/2 || r.Closed },
			want:  "most cancelled streams never reach the app",
		},
		{
			name:   "CONTINUATION flood",
			attack: func() (attacktest.H2Result, error) { return attacktest.ContinuationFlood(h.outbound, 64<<20) },
			// Sent counts what the kernel's buffers took too; the heap peak says
			// what the sidecar held.
			check: func(r attacktest.H2Result) bool { return r.Closed && r.GoAway != nil },
			want:  "GOAWAY and the connection closed",
		},
		{
			name: "too many streams",
			attack: func() (attacktest.H2Result, error) {
				return attacktest.TooManyStreams(h.outbound, 3*lim.H2MaxConcurrentStreams)
			},
			check: func(r attacktest.H2Result) bool {
				return r.Resets[http2.ErrCodeProtocol]+r.Resets[http2.ErrCodeRefusedStream] > 0 || goAway(r, http2.ErrCodeProtocol, http2.ErrCodeEnhanceYourCalm)
			},
			want: "streams beyond the limit refused",
		},
		{
			name:   "window overflow",
			attack: func() (attacktest.H2Result, error) { return attacktest.WindowOverflow(h.outbound) },
			check:  func(r attacktest.H2Result) bool { return goAway(r, http2.ErrCodeFlowControl) || r.Closed },
			want:   "GOAWAY FLOW_CONTROL_ERROR",
		},
		{
			name:   "data beyond the window",
			attack: func() (attacktest.H2Result, error) { return attacktest.DataBeyondWindow(h.outbound, 8<<20) },
			check: func(r attacktest.H2Result) bool {
				return r.Resets[http2.ErrCodeFlowControl] > 0 || goAway(r, http2.ErrCodeFlowControl)
			},
			want: "FLOW_CONTROL_ERROR",
		},
		{
			name:   "HPACK bomb",
			attack: func() (attacktest.H2Result, error) { return attacktest.HPACKBomb(h.outbound, 4000, 20000) },
			check: func(r attacktest.H2Result) bool {
				return h.app.saw("/hpack-bomb") == 0 && (r.Statuses["431"] > 0 || r.GoAway != nil || len(r.Resets) > 0)
			},
			want: "431, reset or GOAWAY; the app never sees it",
		},
	}
	for _, tt := range tests {
		res, err := tt.attack()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !tt.check(res) {
			t.Errorf("%s: %v; want %s", tt.name, res, tt.want)
		}
		if code, err := attacktest.Get(h.outbound, nil, "echo", "/"); err != nil || code != 200 {
			t.Errorf("%s: well-behaved request after the attack: %d, %v", tt.name, code, err)
		}
		g, heap := probe.Peaks()
		t.Logf("%s: %v (%s); peak so far %d goroutines, %d KiB heap", tt.name, res, tt.want, g, heap>>10)
	}
	h.settleUpstream()
	g, heap, err := probe.Settle(10*time.Second, 10, 16<<20)
	if err != nil {
		t.Error(err)
	}
	t.Logf("HTTP/2 attacks: %s; settled at %d goroutines, %d KiB", probe, g, heap>>10)
}

// TestAdminHasNoStateChangingGET: the admin server answers only GET (and HEAD),
// every one of its endpoints read-only, and refuses other methods.
func TestAdminHasNoStateChangingGET(t *testing.T) {
	h := startHostileSidecar(t, hostileLimits())
	for _, path := range []string{"/ready", "/config_dump", "/stats", "/certs", "/tap", "/debug/pprof/heap", "/debug/pprof/symbol", "/drain", "/quitquitquit", "/healthcheck/fail", "/logging"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			req, _ := http.NewRequest(method, "http://"+h.p.AdminAddr()+path, strings.NewReader("x"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s = %d, want 405 or 404", method, path, resp.StatusCode)
			}
		}
	}
	// Envoy's state-changing admin paths do not exist here, even as GET.
	for _, path := range []string{"/drain", "/quitquitquit", "/healthcheck/fail", "/logging", "/reset_counters", "/runtime_modify"} {
		resp, err := http.Get("http://" + h.p.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if !h.p.Ready() {
		t.Error("the sidecar is no longer ready after the admin requests")
	}
}

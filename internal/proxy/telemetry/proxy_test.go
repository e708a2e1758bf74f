package telemetry_test

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/telemetry/accesslog"
)

const reviewsFQDN = "reviews.default.svc.cluster.local"

// mesh is a client sidecar (productpage-v1) and a server sidecar (reviews-v2) in
// front of real apps, configured over a real xDS server, with metrics, access logs
// and tracing on, exporting to a real OTLP/HTTP receiver.
type mesh struct {
	client, server       *proxy.Proxy
	outbound, tcpBind    string
	app                  *recordingApp
	clientLog, serverLog string
	otlp                 *otlpReceiver
}

// recordingApp answers /status/<code> with that code and keeps the headers of each
// request by its X-Test-Id.
type recordingApp struct {
	mu      sync.Mutex
	headers map[string]http.Header
}

func (a *recordingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.headers[r.Header.Get("X-Test-Id")] = r.Header.Clone()
	a.mu.Unlock()
	code := 200
	fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/status/"), "%d", &code)
	w.WriteHeader(code)
	io.WriteString(w, "hello from reviews")
}

func (a *recordingApp) received(id string) http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.headers[id]
}

// grpcApp answers every request as a gRPC server would, with grpc-status 5
// (NOT_FOUND) in the trailers.
func grpcApp(t *testing.T) string {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(200)
		w.Write([]byte{0, 0, 0, 0, 0})
		w.Header().Set("Grpc-Status", "5")
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func tcpEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

func directed(l *listenerv3.Listener, d corev3.TrafficDirection) *listenerv3.Listener {
	l.TrafficDirection = d
	return l
}

func newMesh(t *testing.T) *mesh {
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50") // milliseconds: export spans quickly
	dir := t.TempDir()
	m := &mesh{
		outbound: freeAddr(t), tcpBind: freeAddr(t),
		app:       &recordingApp{headers: map[string]http.Header{}},
		clientLog: filepath.Join(dir, "client.log"), serverLog: filepath.Join(dir, "server.log"),
		otlp: newOTLPReceiver(t),
	}
	appSrv := httptest.NewServer(m.app)
	t.Cleanup(appSrv.Close)
	in9080, in9090, in9000 := freeAddr(t), freeAddr(t), freeAddr(t)

	httpC, grpcC, tcpC := names.OutboundCluster(reviewsFQDN, 9080), names.OutboundCluster(reviewsFQDN, 9090), names.OutboundCluster(reviewsFQDN, 9000)
	md := map[string]string{"workload": "reviews-v2", "namespace": "default", "app": "reviews", "version": "v2"}
	client := []proto.Message{
		directed(xdstest.HTTPListener(names.OutboundListener, m.outbound, names.OutboundRoute), corev3.TrafficDirection_OUTBOUND),
		directed(xdstest.TCPListener(names.UpstreamListener(reviewsFQDN, 9000), m.tcpBind, tcpC), corev3.TrafficDirection_OUTBOUND),
		xdstest.RouteConfig(names.OutboundRoute,
			xdstest.VirtualHost(reviewsFQDN+":9080", []string{"reviews:9080"}, httpC),
			xdstest.VirtualHost(reviewsFQDN+":9090", []string{"reviews:9090"}, grpcC)),
		xdstest.EDSCluster(httpC, false), assignment(httpC, md, in9080),
		xdstest.EDSCluster(grpcC, true), assignment(grpcC, md, in9090),
		xdstest.EDSCluster(tcpC, false), assignment(tcpC, md, in9000),
	}
	inbound := func(port uint32, addr string) proto.Message {
		return directed(xdstest.InlineHTTPListener(names.InboundListener(port), addr,
			xdstest.RouteConfig(names.InboundListener(port), xdstest.VirtualHost("inbound", []string{"*"}, names.InboundCluster(port)))),
			corev3.TrafficDirection_INBOUND)
	}
	server := []proto.Message{
		inbound(9080, in9080),
		inbound(9090, in9090),
		directed(xdstest.TCPListener(names.InboundListener(9000), in9000, names.InboundCluster(9000)), corev3.TrafficDirection_INBOUND),
		xdstest.StaticCluster(names.InboundCluster(9080), false, appSrv.Listener.Addr().String()),
		xdstest.StaticCluster(names.InboundCluster(9090), true, grpcApp(t)),
		xdstest.StaticCluster(names.InboundCluster(9000), false, tcpEcho(t)),
	}
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	xds.Set(t, "productpage-v1.default", "1", client...)
	xds.Set(t, "reviews-v2.default", "1", server...)
	sampling := 100.0
	boot := func(workload, app, version, log string) *bootstrap.Bootstrap {
		return &bootstrap.Bootstrap{
			Node: bootstrap.Node{ID: workload + ".default", Cluster: app, Metadata: bootstrap.Metadata{
				Workload: workload, Namespace: "default", Service: app,
				Labels: map[string]string{"app": app, "version": version},
			}},
			XDS:       xds.Addr,
			Admin:     "127.0.0.1:0",
			Metrics:   "127.0.0.1:0",
			AccessLog: log,
			Tracing:   &bootstrap.Tracing{Sampling: &sampling, Endpoint: m.otlp.URL},
		}
	}
	m.server = startProxy(t, boot("reviews-v2", "reviews", "v2", m.serverLog))
	m.client = startProxy(t, boot("productpage-v1", "productpage", "v1", m.clientLog))
	for _, p := range []*proxy.Proxy{m.server, m.client} {
		eventually(t, 10*time.Second, "sidecar ready", func() error {
			resp, err := http.Get("http://" + p.MetricsAddr() + "/healthz/ready")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/healthz/ready: %s", resp.Status)
			}
			return nil
		})
	}
	return m
}

// get sends a GET to reviews through the client sidecar, as an HTTP proxy, with the
// test id and headers, and returns the status.
func (m *mesh) get(t *testing.T, path, id string, headers map[string]string) int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: m.outbound})}}
	req, err := http.NewRequest(http.MethodGet, "http://reviews:9080"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test-Id", id)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// traceID is the trace id of a traceparent header, "" when it is malformed.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || parts[1] == strings.Repeat("0", 32) {
		return ""
	}
	return parts[1]
}

func TestTelemetryThroughSidecars(t *testing.T) {
	m := newMesh(t)
	const (
		tid = "4bf92f3577b34da6a3ce929d0e0e4736"
		sid = "00f067aa0ba902b7"
	)

	t.Run("trace id reaches the app unchanged", func(t *testing.T) {
		if code := m.get(t, "/kept", "kept", map[string]string{"Traceparent": "00-" + tid + "-" + sid + "-01",
			"X-Trellis-Peer": "spoofed,evil,evil,evil"}); code != 200 {
			t.Fatalf("status %d", code)
		}
		h := m.app.received("kept")
		if got := traceID(h.Get("Traceparent")); got != tid {
			t.Errorf("app got traceparent %q, want trace id %s", h.Get("Traceparent"), tid)
		}
		if strings.Contains(h.Get("Traceparent"), sid) {
			t.Errorf("app got traceparent %q: the parent is still the client's span, not the sidecar's", h.Get("Traceparent"))
		}
		if v, ok := h["X-Trellis-Peer"]; ok {
			t.Errorf("app got x-trellis-peer %q; the sidecars must strip it", v)
		}
		id, _ := hex.DecodeString(tid)
		var spans []*tracepb.Span
		eventually(t, 10*time.Second, "spans exported", func() error {
			if spans = m.otlp.trace(id); len(spans) < 2 {
				return fmt.Errorf("%d spans of the trace received, want 2", len(spans))
			}
			return nil
		})
		kinds := map[tracepb.Span_SpanKind]*tracepb.Span{}
		for _, s := range spans {
			kinds[s.GetKind()] = s
		}
		clientSpan, serverSpan := kinds[tracepb.Span_SPAN_KIND_CLIENT], kinds[tracepb.Span_SPAN_KIND_SERVER]
		if clientSpan == nil || serverSpan == nil {
			t.Fatalf("want a client and a server span, got %v", spans)
		}
		if got := hex.EncodeToString(clientSpan.GetParentSpanId()); got != sid {
			t.Errorf("client span's parent = %s, want the caller's span %s", got, sid)
		}
		if string(serverSpan.GetParentSpanId()) != string(clientSpan.GetSpanId()) {
			t.Errorf("server span's parent is not the client sidecar's span")
		}
		want := []string{"productpage.default", "GET outbound|9080||" + reviewsFQDN, "200", "outbound|9080||" + reviewsFQDN, "-", "/kept",
			"reviews.default", "GET inbound|9080||", "200"}
		got := []string{m.otlp.service(clientSpan), clientSpan.GetName(), attr(clientSpan, "http.response.status_code"),
			attr(clientSpan, "trellis.upstream_cluster"), attr(clientSpan, "trellis.response_flags"), attr(clientSpan, "url.path"),
			m.otlp.service(serverSpan), serverSpan.GetName(), attr(serverSpan, "http.response.status_code")}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("spans (-want +got):\n%s", diff)
		}
	})

	t.Run("a request without a trace gets one", func(t *testing.T) {
		m.get(t, "/new", "new", nil)
		if got := m.app.received("new").Get("Traceparent"); traceID(got) == "" {
			t.Errorf("app got traceparent %q, want a new trace", got)
		}
	})

	t.Run("b3", func(t *testing.T) {
		const b3Trace = "80f198ee56343ba864fe8b2a57d3eff7"
		tests := []struct {
			name    string
			headers map[string]string
			check   func(h http.Header) error
		}{
			{name: "multi", headers: map[string]string{"X-B3-TraceId": b3Trace, "X-B3-SpanId": "e457b5a2e4d86bd1", "X-B3-Sampled": "1"},
				check: func(h http.Header) error {
					if h.Get("X-B3-Traceid") != b3Trace || h.Get("X-B3-Spanid") == "e457b5a2e4d86bd1" {
						return fmt.Errorf("app got X-B3-TraceId %q, X-B3-SpanId %q", h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid"))
					}
					return nil
				}},
			{name: "single", headers: map[string]string{"B3": b3Trace + "-e457b5a2e4d86bd1-1"},
				check: func(h http.Header) error {
					if !strings.HasPrefix(h.Get("B3"), b3Trace+"-") || strings.Contains(h.Get("B3"), "e457b5a2e4d86bd1") {
						return fmt.Errorf("app got b3 %q", h.Get("B3"))
					}
					return nil
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				m.get(t, "/b3", "b3-"+tt.name, tt.headers)
				h := m.app.received("b3-" + tt.name)
				if got := traceID(h.Get("Traceparent")); got != b3Trace {
					t.Errorf("app got traceparent %q, want trace id %s", h.Get("Traceparent"), b3Trace)
				}
				if err := tt.check(h); err != nil {
					t.Error(err)
				}
			})
		}
	})

	t.Run("http metrics", func(t *testing.T) {
		for i := range 3 {
			if code := m.get(t, "/status/503", fmt.Sprint("fail", i), nil); code != 503 {
				t.Fatalf("status %d", code)
			}
		}
		for i := range 2 {
			m.get(t, "/status/201", fmt.Sprint("created", i), nil)
		}
		common := map[string]string{
			"source_workload": "productpage-v1", "source_workload_namespace": "default", "source_app": "productpage", "source_version": "v1",
			"source_principal": "unknown", "destination_workload": "reviews-v2", "destination_workload_namespace": "default",
			"destination_app": "reviews", "destination_version": "v2", "destination_principal": "unknown",
			"destination_service": reviewsFQDN, "destination_service_name": "reviews", "destination_service_namespace": "default",
			"request_protocol": "http", "response_flags": "-", "grpc_response_status": "",
		}
		tests := []struct {
			name   string
			addr   string
			labels map[string]string
		}{
			{name: "source", addr: m.client.MetricsAddr(), labels: map[string]string{"reporter": "source", "connection_security_policy": "unknown"}},
			{name: "destination", addr: m.server.MetricsAddr(), labels: map[string]string{"reporter": "destination", "connection_security_policy": "none"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				labels := with(common, tt.labels)
				eventually(t, 5*time.Second, "metrics", func() error {
					ms, err := scrape(tt.addr)
					if err != nil {
						return err
					}
					got := []float64{
						sum(ms, "trellis_requests_total", with(labels, map[string]string{"response_code": "503"})),
						sum(ms, "trellis_requests_total", with(labels, map[string]string{"response_code": "201"})),
						sum(ms, "trellis_request_duration_milliseconds", with(labels, map[string]string{"response_code": "503"})),
						sum(ms, "trellis_request_bytes", with(labels, map[string]string{"response_code": "503"})),
						sum(ms, "trellis_response_bytes", with(labels, map[string]string{"response_code": "503"})),
					}
					if diff := cmp.Diff([]float64{3, 2, 3, 3, 3}, got); diff != "" {
						return fmt.Errorf("counts (-want +got):\n%s\nall: %v", diff, ms["trellis_requests_total"])
					}
					return nil
				})
			})
		}
	})

	t.Run("grpc status", func(t *testing.T) {
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: protocols}}
		req, err := http.NewRequest(http.MethodPost, "http://"+m.outbound+"/reviews.Reviews/Get", strings.NewReader("\x00\x00\x00\x00\x00"))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "reviews:9090"
		req.Header.Set("Content-Type", "application/grpc")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Trailer.Get("Grpc-Status"); got != "5" {
			t.Fatalf("grpc-status %q, want 5", got)
		}
		for _, addr := range []string{m.client.MetricsAddr(), m.server.MetricsAddr()} {
			eventually(t, 5*time.Second, "grpc metrics", func() error {
				ms, err := scrape(addr)
				if err != nil {
					return err
				}
				if n := sum(ms, "trellis_requests_total", map[string]string{"request_protocol": "grpc", "response_code": "200",
					"grpc_response_status": "5", "source_workload": "productpage-v1", "destination_workload": "reviews-v2"}); n != 1 {
					return fmt.Errorf("%v gRPC requests with status 5, want 1: %v", n, ms["trellis_requests_total"])
				}
				return nil
			})
		}
	})

	t.Run("tcp metrics", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", m.tcpBind, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "hello")
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if string(got) != "hello" || err != nil {
			t.Fatalf("echo = %q, %v", got, err)
		}
		tests := []struct {
			name, addr string
			labels     map[string]string
		}{
			{name: "source", addr: m.client.MetricsAddr(), labels: map[string]string{"reporter": "source", "source_workload": "productpage-v1"}},
			{name: "destination", addr: m.server.MetricsAddr(), labels: map[string]string{"reporter": "destination", "source_workload": "unknown"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				labels := with(tt.labels, map[string]string{"request_protocol": "tcp", "destination_workload": "reviews-v2",
					"destination_service": reviewsFQDN, "response_flags": "-"})
				eventually(t, 5*time.Second, "tcp metrics", func() error {
					ms, err := scrape(tt.addr)
					if err != nil {
						return err
					}
					got := []float64{sum(ms, "trellis_tcp_connections_opened_total", labels), sum(ms, "trellis_tcp_connections_closed_total", labels),
						sum(ms, "trellis_tcp_sent_bytes_total", labels), sum(ms, "trellis_tcp_received_bytes_total", labels)}
					if diff := cmp.Diff([]float64{1, 1, 5, 5}, got); diff != "" {
						return fmt.Errorf("opened, closed, sent, received (-want +got):\n%s", diff)
					}
					return nil
				})
			})
		}
	})

	t.Run("access logs", func(t *testing.T) {
		tests := []struct {
			name string
			file string
			want accesslog.Line
		}{
			{name: "source", file: m.clientLog, want: accesslog.Line{TraceID: tid, Method: "GET", Authority: "reviews:9080", Path: "/kept",
				Protocol: "HTTP/1.1", ResponseCode: 200, ResponseFlags: "-", BytesSent: 18, UpstreamCluster: "outbound|9080||" + reviewsFQDN,
				Source: accesslog.Party{Workload: "productpage-v1", Namespace: "default"}, Destination: accesslog.Party{Workload: "reviews-v2", Namespace: "default"},
				Reporter: "source"}},
			{name: "destination", file: m.serverLog, want: accesslog.Line{TraceID: tid, Method: "GET", Authority: "reviews:9080", Path: "/kept",
				Protocol: "HTTP/1.1", ResponseCode: 200, ResponseFlags: "-", BytesSent: 18, UpstreamCluster: "inbound|9080||",
				Source: accesslog.Party{Workload: "productpage-v1", Namespace: "default"}, Destination: accesslog.Party{Workload: "reviews-v2", Namespace: "default"},
				Reporter: "destination"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got *accesslog.Line
				eventually(t, 5*time.Second, "access log line", func() error {
					lines, err := readLog(tt.file)
					if err != nil {
						return err
					}
					for _, l := range lines {
						if l.TraceID == tid {
							got = &l
							return nil
						}
					}
					return fmt.Errorf("no line with trace id %s among %d", tid, len(lines))
				})
				if _, err := time.Parse(time.RFC3339Nano, got.Time); err != nil {
					t.Errorf("time %q: %v", got.Time, err)
				}
				if got.UpstreamHost == "" || got.DurationMS <= 0 {
					t.Errorf("upstream_host %q, duration_ms %v: want both set", got.UpstreamHost, got.DurationMS)
				}
				got.Time, got.UpstreamHost, got.DurationMS = "", "", 0
				if diff := cmp.Diff(tt.want, *got); diff != "" {
					t.Errorf("line (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// readLog parses every line of an access log file as JSON.
func readLog(path string) ([]accesslog.Line, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []accesslog.Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l accesslog.Line
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("line %q is not an access log line: %w", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

func with(m map[string]string, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

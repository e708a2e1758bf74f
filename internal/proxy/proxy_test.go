package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// mesh is a client sidecar and a server sidecar in front of real apps, configured by
// a real xDS server with hand-built resources.
type mesh struct {
	xds            *xdstest.Server
	client, server *Proxy

	outbound, tcpBind                string // client sidecar listeners
	in80, in8080, in50051, in9000    string // server sidecar listeners
	app, h2app, rr1, rr2, rr3, grpcA string // apps
	tcpEcho, dead                    string
	health                           *health.Server
}

const (
	clientNode = "client.default"
	serverNode = "echo.default"
)

var (
	echoFQDN = names.ServiceFQDN("echo", "default")
	h2FQDN   = names.ServiceFQDN("h2", "default")
	grpcFQDN = names.ServiceFQDN("grpc", "default")
	tcpFQDN  = names.ServiceFQDN("tcp-echo", "default")
	rrFQDN   = names.ServiceFQDN("rr", "default")
)

// clientResources is the client sidecar's configuration; rrEndpoints are the
// endpoints of the round-robin service; extra virtual host "late" appears when late.
func (m *mesh) clientResources(rrEndpoints []string, late bool) []proto.Message {
	echoC := names.OutboundCluster(echoFQDN, 80)
	h2C := names.OutboundCluster(h2FQDN, 8080)
	grpcC := names.OutboundCluster(grpcFQDN, 50051)
	tcpC := names.OutboundCluster(tcpFQDN, 9000)
	rrC := names.OutboundCluster(rrFQDN, 80)
	emptyC := names.OutboundCluster("empty", 80)
	deadC := names.OutboundCluster("dead", 80)
	vhosts := []string{"echo", "echo:80", "echo.default", echoFQDN}
	rc := xdstest.RouteConfig(names.OutboundRoute,
		xdstest.VirtualHost(echoFQDN+":80", vhosts, echoC),
		xdstest.VirtualHost(h2FQDN+":8080", []string{"h2:8080"}, h2C),
		xdstest.VirtualHost(grpcFQDN+":50051", []string{"grpc:50051"}, grpcC),
		xdstest.VirtualHost(rrFQDN+":80", []string{"rr"}, rrC),
		xdstest.VirtualHost("empty:80", []string{"empty"}, emptyC),
		xdstest.VirtualHost("dead:80", []string{"dead"}, deadC),
	)
	if late {
		rc.VirtualHosts = append(rc.VirtualHosts, xdstest.VirtualHost("late:80", []string{"late"}, rrC))
	}
	return []proto.Message{
		xdstest.HTTPListener(names.OutboundListener, m.outbound, names.OutboundRoute),
		xdstest.TCPListener(names.UpstreamListener(tcpFQDN, 9000), m.tcpBind, tcpC),
		rc,
		xdstest.EDSCluster(echoC, false), xdstest.Assignment(echoC, m.in80),
		xdstest.EDSCluster(h2C, true), xdstest.Assignment(h2C, m.in8080),
		xdstest.EDSCluster(grpcC, true), xdstest.Assignment(grpcC, m.in50051),
		xdstest.EDSCluster(tcpC, false), xdstest.Assignment(tcpC, m.in9000),
		xdstest.EDSCluster(rrC, false), xdstest.Assignment(rrC, rrEndpoints...),
		xdstest.EDSCluster(emptyC, false), xdstest.Assignment(emptyC),
		xdstest.EDSCluster(deadC, false), xdstest.Assignment(deadC, m.dead),
	}
}

func (m *mesh) serverResources() []proto.Message {
	inbound := func(port uint32, addr string) proto.Message {
		return xdstest.InlineHTTPListener(names.InboundListener(port), addr,
			xdstest.RouteConfig(names.InboundListener(port), xdstest.VirtualHost("inbound", []string{"*"}, names.InboundCluster(port))))
	}
	return []proto.Message{
		inbound(80, m.in80),
		inbound(8080, m.in8080),
		inbound(50051, m.in50051),
		xdstest.TCPListener(names.InboundListener(9000), m.in9000, names.InboundCluster(9000)),
		xdstest.StaticCluster(names.InboundCluster(80), false, m.app),
		xdstest.StaticCluster(names.InboundCluster(8080), true, m.h2app),
		xdstest.StaticCluster(names.InboundCluster(50051), true, m.grpcA),
		xdstest.StaticCluster(names.InboundCluster(9000), false, m.tcpEcho),
	}
}

func newMesh(t *testing.T, delta bool) *mesh {
	m := &mesh{
		outbound: freeAddr(t), tcpBind: freeAddr(t),
		in80: freeAddr(t), in8080: freeAddr(t), in50051: freeAddr(t), in9000: freeAddr(t),
		dead: freeAddr(t),
	}
	m.app = hostOf(appServer(t, "echo", false).URL)
	m.h2app = hostOf(appServer(t, "h2", true).URL)
	m.rr1 = hostOf(appServer(t, "rr1", false).URL)
	m.rr2 = hostOf(appServer(t, "rr2", false).URL)
	m.rr3 = hostOf(appServer(t, "rr3", false).URL)
	m.tcpEcho = tcpEcho(t)
	m.grpcA, m.health = grpcHealthServer(t)

	m.xds = xdstest.Start(t, "127.0.0.1:0", nil)
	m.xds.Set(t, serverNode, "1", m.serverResources()...)
	m.xds.Set(t, clientNode, "1", m.clientResources([]string{m.rr1, m.rr2}, false)...)
	m.server = startProxy(t, serverNode, m.xds.Addr, delta)
	m.client = startProxy(t, clientNode, m.xds.Addr, delta)
	for _, p := range []*Proxy{m.server, m.client} {
		eventually(t, 10*time.Second, "sidecar ready", func() error {
			return expect(http.DefaultClient, "http://"+p.AdminAddr()+"/ready", "", 200, "ready")
		})
	}
	return m
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return u.Host
}

func grpcHealthServer(t *testing.T) (string, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return ln.Addr().String(), hs
}

func TestSidecar(t *testing.T) {
	for _, mode := range []struct {
		name  string
		delta bool
	}{{"sotw", false}, {"delta", true}} {
		t.Run(mode.name, func(t *testing.T) { testSidecar(t, mode.delta) })
	}
}

func testSidecar(t *testing.T, delta bool) {
	m := newMesh(t, delta)
	proxyClient := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: m.outbound})}, Timeout: 10 * time.Second}
	plain := &http.Client{Timeout: 10 * time.Second}

	t.Run("http", func(t *testing.T) {
		tests := []struct {
			name     string
			client   *http.Client
			url      string
			host     string
			wantCode int
			want     string
		}{
			{name: "proxy form", client: proxyClient, url: "http://echo/hello?x=1", wantCode: 200,
				want: "app=echo host=echo uri=/hello?x=1 proto=HTTP/1.1"},
			{name: "proxy form with port", client: proxyClient, url: "http://echo:80/a", wantCode: 200, want: "app=echo host=echo:80 uri=/a"},
			{name: "host form", client: plain, url: "http://" + m.outbound + "/b", host: "echo.default", wantCode: 200,
				want: "app=echo host=echo.default uri=/b"},
			{name: "host case-insensitive", client: plain, url: "http://" + m.outbound + "/", host: "ECHO", wantCode: 200, want: "app=echo"},
			{name: "fqdn", client: proxyClient, url: "http://" + echoFQDN + "/", wantCode: 200, want: "app=echo"},
			{name: "no virtual host", client: plain, url: "http://" + m.outbound + "/", host: "nope:80", wantCode: 404, want: "no route for host nope:80"},
			{name: "no endpoint", client: proxyClient, url: "http://empty/", wantCode: 503, want: "no healthy upstream"},
			{name: "connect failure", client: proxyClient, url: "http://dead/", wantCode: 503, want: "upstream connect error"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := expect(tt.client, tt.url, tt.host, tt.wantCode, tt.want); err != nil {
					t.Error(err)
				}
			})
		}
	})

	t.Run("h2c end to end", func(t *testing.T) {
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		h2 := &http.Client{Transport: &http.Transport{Protocols: protocols}, Timeout: 10 * time.Second}
		if err := expect(h2, "http://"+m.outbound+"/h2", "h2:8080", 200, "app=h2 host=h2:8080 uri=/h2 proto=HTTP/2.0"); err != nil {
			t.Error(err)
		}
		// An HTTP/1.1 client reaches the same h2c upstream.
		if err := expect(plain, "http://"+m.outbound+"/h1", "h2:8080", 200, "app=h2 host=h2:8080 uri=/h1 proto=HTTP/2.0"); err != nil {
			t.Error(err)
		}
	})

	t.Run("grpc health", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := grpc.NewClient("passthrough:///"+m.outbound,
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc:50051"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
		if err != nil {
			t.Fatalf("Check through the mesh: %v", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("status = %v, want SERVING", resp.GetStatus())
		}
		// An error status travels back in trailers.
		_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
		if got := fmt.Sprint(err); !strings.Contains(got, "NotFound") {
			t.Errorf("Check(unknown) error = %v, want NotFound", err)
		}
		// A server stream delivers its first message while the stream stays open.
		stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		msg, err := stream.Recv()
		if err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch first message = %v, %v; want SERVING", msg, err)
		}
		// A later message is flushed through both sidecars as soon as it is sent.
		m.health.SetServingStatus("echo", healthpb.HealthCheckResponse_NOT_SERVING)
		defer m.health.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
		msg, err = stream.Recv()
		if err != nil || msg.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch second message = %v, %v; want NOT_SERVING", msg, err)
		}
	})

	t.Run("tcp echo", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", m.tcpBind, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "hello over tcp"); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello over tcp" {
			t.Errorf("echo = %q, %v; want %q", got, err, "hello over tcp")
		}
	})

	t.Run("round robin", func(t *testing.T) {
		got := map[string]int{}
		for range 10 {
			_, body, err := get(proxyClient, "http://rr/", "")
			if err != nil {
				t.Fatal(err)
			}
			got[strings.Fields(body)[0]]++
		}
		if got["app=rr1"] != 5 || got["app=rr2"] != 5 {
			t.Errorf("10 requests went %v, want 5 to each of rr1 and rr2", got)
		}
	})

	t.Run("update swapped in", func(t *testing.T) {
		m.xds.Set(t, clientNode, "2", m.clientResources([]string{m.rr1, m.rr2, m.rr3}, false)...)
		eventually(t, 10*time.Second, "new endpoint rr3 serving", func() error {
			return expect(proxyClient, "http://rr/", "", 200, "app=rr3")
		})
	})

	t.Run("invalid resources are rejected", func(t *testing.T) {
		tests := []struct {
			name   string
			mutate func([]proto.Message)
			want   string
		}{
			{
				name: "unknown network filter",
				mutate: func(res []proto.Message) {
					l := xdstest.HTTPListener(names.OutboundListener, m.outbound, names.OutboundRoute)
					l.FilterChains[0].Filters[0].Name = "envoy.filters.network.mongo_proxy"
					res[0] = l
				},
				want: `listener "outbound": filter_chains[0].filters[0].name: filter "envoy.filters.network.mongo_proxy" is not supported`,
			},
			{
				name: "missing route cluster",
				mutate: func(res []proto.Message) {
					rc := proto.Clone(res[2]).(*routev3.RouteConfiguration)
					rc.VirtualHosts[0].Routes[0].GetRoute().ClusterSpecifier = nil
					res[2] = rc
				},
				want: `route configuration "outbound": virtual_hosts[0].routes[0].route.cluster: one of cluster or weighted_clusters is required`,
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := m.clientResources([]string{m.rr1, m.rr2, m.rr3}, false)
				tt.mutate(res)
				m.xds.Set(t, clientNode, fmt.Sprintf("bad-%d", i), res...)
				eventually(t, 10*time.Second, "NACK reaches the server", func() error {
					for _, r := range m.xds.Requests() {
						if strings.Contains(r.ErrorDetail, tt.want) {
							return nil
						}
					}
					return fmt.Errorf("no request with error_detail containing %q", tt.want)
				})
				if err := expect(proxyClient, "http://echo/still", "", 200, "app=echo"); err != nil {
					t.Errorf("previous configuration no longer serving: %v", err)
				}
			})
		}
		// A good configuration after the bad ones is applied.
		m.xds.Set(t, clientNode, "3", m.clientResources([]string{m.rr1, m.rr2, m.rr3}, true)...)
		eventually(t, 20*time.Second, "good configuration after NACKs", func() error {
			return expect(proxyClient, "http://late/", "", 200, "app=rr")
		})
	})

	t.Run("admin", func(t *testing.T) {
		admin := "http://" + m.client.AdminAddr()
		_, dump, err := get(plain, admin+"/config_dump", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"name": "outbound"`, `"name": "outbound|80||echo.default.svc.cluster.local"`, `"ready": true`, `"connected": true`} {
			if !strings.Contains(dump, want) {
				t.Errorf("config_dump lacks %s", want)
			}
		}
		_, st, err := get(plain, admin+"/stats", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"xds.connected 1", "listener.outbound.rq_2xx ", "listener.outbound.rq_4xx ",
			"cluster.outbound|80||empty.rq_5xx 1", "tcp_connections_total 1", "xds.lds.update_rejected "} {
			if !strings.Contains(st, want) {
				t.Errorf("stats lack %q:\n%s", want, st)
			}
		}
		if strings.Contains(st, "xds.lds.update_rejected 0") {
			t.Errorf("stats count no rejected LDS update:\n%s", st)
		}
	})

	t.Run("control plane restart", func(t *testing.T) {
		addr := m.xds.Addr
		m.xds.Stop()
		eventually(t, 10*time.Second, "disconnected", func() error {
			if m.client.client.Connected() {
				return errNotYet
			}
			return nil
		})
		if err := expect(proxyClient, "http://echo/offline", "", 200, "app=echo"); err != nil {
			t.Fatalf("not serving while the control plane is down: %v", err)
		}
		m.xds = xdstest.Start(t, addr, nil)
		m.xds.Set(t, serverNode, "r1", m.serverResources()...)
		res := m.clientResources([]string{m.rr3}, true)
		m.xds.Set(t, clientNode, "r1", res...)
		eventually(t, 20*time.Second, "update after reconnect", func() error {
			for range 3 {
				if err := expect(proxyClient, "http://rr/", "", 200, "app=rr3"); err != nil {
					return err
				}
			}
			return nil
		})
		if err := expect(proxyClient, "http://echo/online", "", 200, "app=echo"); err != nil {
			t.Error(err)
		}
	})
}

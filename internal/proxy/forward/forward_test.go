package forward

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"trellis.dev/trellis/internal/proxy/cluster"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

type fixedTable struct{ t *runtime.Table }

func (f fixedTable) Current() *runtime.Table { return f.t }

const listenAddr = "127.0.0.1:15001"

// newForwarder builds a table routing host "app" to upstreams and "dead" to a closed
// port, and returns a test server running the HTTP path for it.
func newForwarder(t testing.TB, upstreams ...string) (*httptest.Server, *stats.Stats) {
	t.Helper()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := closed.Addr().String()
	closed.Close()
	res := runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{"outbound": xdstest.HTTPListener("outbound", listenAddr, "outbound")},
		Routes: map[string]*routev3.RouteConfiguration{"outbound": xdstest.RouteConfig("outbound",
			xdstest.VirtualHost("app", []string{"app"}, "app"),
			xdstest.VirtualHost("dead", []string{"dead"}, "dead"),
			xdstest.VirtualHost("none", []string{"none"}, "none"))},
		Clusters: map[string]*clusterv3.Cluster{
			"app":  xdstest.StaticCluster("app", false, upstreams...),
			"dead": xdstest.StaticCluster("dead", false, dead),
			"none": xdstest.StaticCluster("none", false),
		},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	table, err := runtime.Build(res)
	if err != nil {
		t.Fatal(err)
	}
	st := &stats.Stats{}
	clusters := cluster.NewManager(cluster.Config{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(clusters.Close)
	h := NewHTTP(HTTPConfig{Tables: fixedTable{table}, Clusters: clusters, Stats: st, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(h.Close)
	h.Upstreams().Attach(table)
	srv := httptest.NewServer(h.Handler(listenAddr))
	t.Cleanup(srv.Close)
	t.Cleanup(h.Upstreams().Close)
	return srv, st
}

func TestHTTP(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		fmt.Fprintf(w, "host=%s uri=%s xff=%q foo=%q te=%q", r.Host, r.RequestURI,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Foo"), r.Header.Get("Te"))
		w.Header().Set("X-Checksum", "abc")
	}))
	defer app.Close()
	srv, st := newForwarder(t, hostOf(app.URL))
	proxyURL, _ := url.Parse(srv.URL)
	viaProxy := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}

	tests := []struct {
		name        string
		client      *http.Client
		url         string
		host        string
		header      http.Header
		wantCode    int
		wantBody    string
		wantTrailer string
	}{
		{name: "host header", client: http.DefaultClient, url: srv.URL + "/x?y=1", host: "app", wantCode: 200,
			wantBody: `host=app uri=/x?y=1 xff="" foo="" te=""`, wantTrailer: "abc"},
		{name: "absolute form becomes origin form", client: viaProxy, url: "http://app/abs", wantCode: 200,
			wantBody: `host=app uri=/abs xff="" foo="" te=""`, wantTrailer: "abc"},
		{name: "hop-by-hop removed", client: http.DefaultClient, url: srv.URL + "/", host: "app",
			header: http.Header{"Connection": {"X-Foo"}, "X-Foo": {"1"}}, wantCode: 200,
			wantBody: `host=app uri=/ xff="" foo="" te=""`, wantTrailer: "abc"},
		{name: "forwarded-for passed through", client: http.DefaultClient, url: srv.URL + "/", host: "app",
			header: http.Header{"X-Forwarded-For": {"192.0.2.9"}}, wantCode: 200,
			wantBody: `host=app uri=/ xff="192.0.2.9" foo="" te=""`, wantTrailer: "abc"},
		{name: "no virtual host", client: http.DefaultClient, url: srv.URL + "/", host: "other", wantCode: 404,
			wantBody: "no route for host other"},
		{name: "no endpoint", client: http.DefaultClient, url: srv.URL + "/", host: "none", wantCode: 503,
			wantBody: "no healthy upstream"},
		{name: "connect failure", client: http.DefaultClient, url: srv.URL + "/", host: "dead", wantCode: 503,
			wantBody: "upstream connect error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if got := strings.TrimSpace(string(body)); resp.StatusCode != tt.wantCode || got != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, got, tt.wantCode, tt.wantBody)
			}
			if got := resp.Trailer.Get("X-Checksum"); got != tt.wantTrailer {
				t.Errorf("trailer X-Checksum = %q, want %q", got, tt.wantTrailer)
			}
		})
	}
	c := st.Listener("outbound")
	if c.Requests(2) != 4 || c.Requests(4) != 1 || c.Requests(5) != 2 {
		t.Errorf("listener counters 2xx=%d 4xx=%d 5xx=%d, want 4 1 2", c.Requests(2), c.Requests(4), c.Requests(5))
	}
}

func TestTCPHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c) // until the client's half-close arrives
		io.WriteString(c, "got "+string(data))
	}()
	table, err := runtime.Build(runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{"l": xdstest.TCPListener("l", listenAddr, "c")},
		Clusters:  map[string]*clusterv3.Cluster{"c": xdstest.StaticCluster("c", false, ln.Addr().String())},
	})
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	clusters := cluster.NewManager(cluster.Config{Logger: slog.New(slog.DiscardHandler)})
	defer clusters.Close()
	up := &Upstreams{logger: slog.New(slog.DiscardHandler), clusters: clusters, stats: &stats.Stats{}, pools: map[upstreamKey]*upstream{}}
	up.Attach(table)
	p := &TCP{Stats: &stats.Stats{}, Logger: slog.New(slog.DiscardHandler)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := front.Accept()
		if err != nil {
			return
		}
		p.Serve(t.Context(), c, table.ListenerAt(listenAddr))
	}()
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got ping" {
		t.Errorf("read %q, %v; want %q", got, err, "got ping")
	}
	<-done
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return u.Host
}

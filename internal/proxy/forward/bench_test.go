package forward

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"trellis.dev/trellis/internal/proxy/h1server"
	"trellis.dev/trellis/internal/proxy/runtime"
)

var payload = make([]byte, 1024)

func benchUpstream(b *testing.B) *httptest.Server {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(payload)
	}))
	b.Cleanup(app.Close)
	return app
}

func benchGet(b *testing.B, client *http.Client, url, host string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = host
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkDirect is the baseline: client to app, 1 KiB responses, keep-alive.
func BenchmarkDirect(b *testing.B) {
	app := benchUpstream(b)
	benchGet(b, &http.Client{Transport: &http.Transport{}}, app.URL+"/", "app")
}

// BenchmarkHTTPForward is the hot path: client to the sidecar's HTTP path (routing,
// balancing, reverse proxy, pooled upstream connection) to app. Allocations include
// the client's, the sidecar's and the app's, all in this process.
func BenchmarkHTTPForward(b *testing.B) {
	app := benchUpstream(b)
	srv, _ := newForwarder(b, hostOf(app.URL))
	benchGet(b, &http.Client{Transport: &http.Transport{}}, srv.URL+"/", "app")
}

// BenchmarkHTTPForwardPost is the benchmark's workload (docs/benchmarks.md) through
// one sidecar: POSTs of 1 KiB that the app echoes; "retry" with the retry policy the
// control plane gives every route by default (the body is buffered to be replayable).
func BenchmarkHTTPForwardPost(b *testing.B) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // as fortio's echo: read it all, then answer
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	b.Cleanup(app.Close)
	b.Run("plain", func(b *testing.B) {
		srv, _ := newForwarder(b, hostOf(app.URL))
		benchPost(b, srv.URL+"/")
	})
	b.Run("retry", func(b *testing.B) {
		retry := &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
			NumRetries: u32(2)}
		h := newHarness(b, []*routev3.Route{to("app", withRetry(retry))}, static("app", []string{hostOf(app.URL)}))
		benchPost(b, h.url+"/")
	})
}

func benchPost(b *testing.B, url string) {
	client := &http.Client{Transport: &http.Transport{}}
	body := bytes.NewReader(payload)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		body.Reset(payload)
		req, err := http.NewRequest(http.MethodPost, url, body)
		if err != nil {
			b.Fatal(err)
		}
		req.Host = "app"
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != int64(len(payload)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

// BenchmarkHeaderMutation is the per-request header step: a weighted cluster's and a
// route's changes (remove, overwrite, append) on a request's headers.
func BenchmarkHeaderMutation(b *testing.B) {
	cluster := runtime.HeaderMutation{Add: []runtime.HeaderValue{{Key: "X-Version", Value: "v2", Overwrite: true}}}
	route := runtime.HeaderMutation{
		Remove: []string{"X-Internal"},
		Add:    []runtime.HeaderValue{{Key: "X-Route", Value: "r1"}, {Key: "X-Version", Value: "v3", Overwrite: true}},
	}
	base := http.Header{"Accept": {"*/*"}, "Content-Type": {"application/json"}, "X-Internal": {"1"}, "X-Request-Id": {"abc"}}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		for k, v := range base {
			h[k] = v
		}
		mutateRequest(h, &cluster, &route)
	}
	if h.Get("X-Version") != "v3" || h.Get("X-Route") != "r1" || h.Get("X-Internal") != "" {
		b.Fatalf("mutated headers: %v", h)
	}
}

// BenchmarkHTTPForwardH1 is the sidecar's HTTP/1.1 path as it runs in the binary:
// one keep-alive client connection served by h1server, the HTTP path with the
// default retry policy, h1Transport to an app (also on h1server) that echoes 1 KiB
// POSTs. The client writes raw requests, so allocations are the sidecar's, the
// app's and http.ReadResponse's on the client side.
func BenchmarkHTTPForwardH1(b *testing.B) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	app := serveH1(b, echo)
	retry := &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: u32(2)}
	h := newHarness(b, []*routev3.Route{to("app", withRetry(retry))}, static("app", []string{app}))
	sidecar := serveH1(b, h.handler)
	c, err := net.Dial("tcp", sidecar)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("POST /echo HTTP/1.1\r\nHost: app\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	br := bufio.NewReader(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if n, _ := io.Copy(io.Discard, resp.Body); n != 1024 || resp.StatusCode != 200 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}

// serveH1 serves handler with h1server on a loopback port and returns its address.
func serveH1(b *testing.B, handler http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	srv := h1server.New(h1server.Config{Handler: handler, HeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c)
		}
	}()
	return ln.Addr().String()
}

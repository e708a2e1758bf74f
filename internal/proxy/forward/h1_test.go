package forward

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestH1 is the h1Transport of a cluster, dialling plain TCP.
func newTestH1(t *testing.T, idleTimeout time.Duration) *h1Transport {
	t.Helper()
	d := &net.Dialer{Timeout: time.Second}
	tr := newH1Transport(d.DialContext, idleTimeout, &http.Transport{DialContext: d.DialContext})
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func h1Request(t *testing.T, ctx context.Context, method, addr, body string) *http.Request {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/p?q=1", rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app"
	return req
}

func roundTripBody(t *testing.T, rt http.RoundTripper, req *http.Request) (int, string) {
	t.Helper()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// connCounter is an httptest server's count of new and closed connections.
type connCounter struct{ opened, closed atomic.Int32 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.opened.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.closed.Add(1)
	}
}

func TestH1ReusesConnections(t *testing.T) {
	var conns connCounter
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Method+" "+r.Host+" "+r.RequestURI)
		w.Write(b)
	}))
	app.Config.ConnState = conns.hook
	app.Start()
	defer app.Close()
	tr := newTestH1(t, 0)
	for i := range 5 {
		method, body := http.MethodGet, ""
		if i%2 == 1 {
			method, body = http.MethodPost, strings.Repeat("x", 1000*i)
		}
		code, got := roundTripBody(t, tr, h1Request(t, context.Background(), method, hostOf(app.URL), body))
		if code != 200 || got != body {
			t.Fatalf("request %d: status %d, body of %d bytes, want 200 and %d", i, code, len(got), len(body))
		}
	}
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("the app saw %d connections for 5 sequential requests, want 1 (kept alive)", n)
	}
}

// TestH1FallbackStreams: bodies of unknown length and bodies larger than
// maxInlineBody go through the fallback transport, streamed.
func TestH1FallbackStreams(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Length", r.Header.Get("Content-Length"))
		w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
		io.WriteString(w, strings.Repeat("y", int(n)))
	}))
	defer app.Close()
	tr := newTestH1(t, 0)
	big := strings.Repeat("z", maxInlineBody+1)
	tests := []struct {
		name   string
		body   io.Reader
		length int64
		want   int
		wantTE string
	}{
		{name: "unknown length", body: io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd")), length: -1, want: 4, wantTE: "chunked"},
		{name: "large", body: strings.NewReader(big), length: int64(len(big)), want: len(big)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := h1Request(t, context.Background(), http.MethodPost, hostOf(app.URL), "")
			req.Body, req.ContentLength = io.NopCloser(tt.body), tt.length
			if tr.takes(req) {
				t.Fatal("h1Transport takes the request itself, want the fallback")
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(b) != tt.want || resp.Header.Get("X-TE") != tt.wantTE {
				t.Errorf("got %d bytes, transfer encoding %q; want %d, %q", len(b), resp.Header.Get("X-TE"), tt.want, tt.wantTE)
			}
		})
	}
}

// oneShotServer answers the first request of every connection (without saying
// "Connection: close") and then, on closeAfter, closes the connection; with
// dropSecond it instead reads the second request and closes without an answer.
type oneShotServer struct {
	ln       net.Listener
	accepted atomic.Int32
	wg       sync.WaitGroup
}

func newOneShotServer(t *testing.T, dropSecond bool) *oneShotServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &oneShotServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				if dropSecond {
					http.ReadRequest(br) // read the next request, then close unanswered
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// TestH1StaleIdleConnection: a connection the server closed while it was idle is not
// used again (the peek before reuse sees its end), whatever the method.
func TestH1StaleIdleConnection(t *testing.T) {
	srv := newOneShotServer(t, false)
	tr := newTestH1(t, 0)
	addr := srv.ln.Addr().String()
	for i, method := range []string{http.MethodGet, http.MethodPost, http.MethodPost} {
		if i > 0 {
			waitIdleClosed(t, tr, addr)
		}
		if code, body := roundTripBody(t, tr, h1Request(t, context.Background(), method, addr, "payload")); code != 200 || body != "ok" {
			t.Fatalf("request %d (%s): %d %q", i, method, code, body)
		}
	}
	if n := srv.accepted.Load(); n != 3 {
		t.Errorf("server accepted %d connections, want 3", n)
	}
}

// waitIdleClosed waits until the server has closed the idle connection to addr.
func waitIdleClosed(t *testing.T, tr *h1Transport, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		conns := tr.idle[addr]
		tr.mu.Unlock()
		if len(conns) == 0 || !conns[0].alive() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the server did not close the idle connection")
}

// TestH1ResendOnReusedConnection: when a reused connection fails before any byte of
// the response, an idempotent request is sent again on a new connection; a POST is
// not (the server may have acted on it) and fails.
func TestH1ResendOnReusedConnection(t *testing.T) {
	tests := []struct {
		method   string
		wantErr  bool
		accepted int32
	}{
		{method: http.MethodGet, accepted: 2},
		{method: http.MethodPost, wantErr: true, accepted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			srv := newOneShotServer(t, true)
			tr := newTestH1(t, 0)
			addr := srv.ln.Addr().String()
			roundTripBody(t, tr, h1Request(t, context.Background(), http.MethodGet, addr, ""))
			resp, err := tr.RoundTrip(h1Request(t, context.Background(), tt.method, addr, "b"))
			if resp != nil {
				resp.Body.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("second request: error %v, want error %v", err, tt.wantErr)
			}
			if n := srv.accepted.Load(); n != tt.accepted {
				t.Errorf("server accepted %d connections, want %d", n, tt.accepted)
			}
		})
	}
}

func TestH1IdleTimeout(t *testing.T) {
	var conns connCounter
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	app.Config.ConnState = conns.hook
	app.Start()
	defer app.Close()
	tr := newTestH1(t, 50*time.Millisecond)
	roundTripBody(t, tr, h1Request(t, context.Background(), http.MethodGet, hostOf(app.URL), ""))
	deadline := time.Now().Add(5 * time.Second)
	for conns.closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was not closed after the idle timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.idle) != 0 || tr.sweep != nil {
		t.Errorf("after the sweep: %d endpoints with idle connections, sweep pending %v; want none", len(tr.idle), tr.sweep != nil)
	}
}

// TestH1Cancel: cancelling the request's context unblocks a request waiting for its
// response and one reading its body, and their connections are not reused.
func TestH1Cancel(t *testing.T) {
	release := make(chan struct{})
	var conns connCounter
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("q") == "stream" {
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	app.Config.ConnState = conns.hook
	app.Start()
	defer app.Close()
	defer close(release)
	tr := newTestH1(t, 0)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := tr.RoundTrip(h1Request(t, ctx, http.MethodGet, hostOf(app.URL), ""))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for the response: error %v, want the context's", err)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	req := h1Request(t, ctx2, http.MethodGet, hostOf(app.URL), "")
	req.URL.RawQuery = "q=stream"
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := io.ReadAtLeast(resp.Body, buf, len("first")); err != nil || string(buf[:n]) != "first" {
		t.Fatalf("first chunk: %q, %v", buf[:n], err)
	}
	time.AfterFunc(20*time.Millisecond, cancel2)
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("reading the body after the cancel: no error")
	}
	resp.Body.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancelled requests took %v", d)
	}
	tr.mu.Lock()
	idle := len(tr.idle)
	tr.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d endpoints with idle connections after cancelled requests, want none", idle)
	}
}

// TestH1EarlyClose: closing a body before its end closes the connection rather than
// draining a stream that may not end.
func TestH1EarlyClose(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write(make([]byte, 4096)); err != nil {
				return
			}
		}
	}))
	defer app.Close()
	tr := newTestH1(t, 0)
	resp, err := tr.RoundTrip(h1Request(t, context.Background(), http.MethodGet, hostOf(app.URL), ""))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10000))
	done := make(chan struct{})
	go func() { resp.Body.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close of an endless body did not return")
	}
}

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		name    string
		req     func() *http.Request
		want    []string // lines that must be there
		notWant []string
		wantErr string
	}{
		{
			name: "get",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1:80/a%20b?x=1&y", nil)
				r.Host = "app:8080"
				r.Header.Set("X-A", "1")
				r.Header.Add("X-A", "2")
				r.Header["User-Agent"] = []string{""}
				return r
			},
			want:    []string{"GET /a%20b?x=1&y HTTP/1.1", "Host: app:8080", "X-A: 1", "X-A: 2"},
			notWant: []string{"User-Agent", "Content-Length", "Connection"},
		},
		{
			name: "post with a body, close",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, "http://10.0.0.1/", strings.NewReader("hello"))
				r.Close = true
				r.Header.Set("Transfer-Encoding", "chunked") // the length wins
				return r
			},
			want:    []string{"POST / HTTP/1.1", "Host: 10.0.0.1", "Content-Length: 5", "Connection: close", "hello"},
			notWant: []string{"Transfer-Encoding"},
		},
		{
			name: "empty post says its length",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, "http://10.0.0.1/", nil)
				return r
			},
			want: []string{"Content-Length: 0"},
		},
		{
			name: "header value with a newline",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1/", nil)
				r.Header["X-Bad"] = []string{"a\r\nX-Injected: 1"}
				return r
			},
			wantErr: `invalid header field value for "X-Bad"`,
		},
		{
			name: "short body",
			req: func() *http.Request {
				r, _ := http.NewRequest(http.MethodPut, "http://10.0.0.1/", strings.NewReader("abc"))
				r.ContentLength = 10
				return r
			},
			wantErr: "reading the request body: 3 of its 10 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := appendRequest(nil, tt.req())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b))); err != nil {
				t.Errorf("net/http cannot read the request back: %v\n%s", err, b)
			}
			lines := strings.Split(string(b), "\r\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("line %q missing from:\n%s", w, b)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(string(b), nw) {
					t.Errorf("%q in:\n%s", nw, b)
				}
			}
		})
	}
}

// TestH1RefusedRequestKeepsConnection: a request that cannot be written (a header
// value with a newline) fails without costing the pool its connection.
func TestH1RefusedRequestKeepsConnection(t *testing.T) {
	var conns connCounter
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	app.Config.ConnState = conns.hook
	app.Start()
	defer app.Close()
	tr := newTestH1(t, 0)
	roundTripBody(t, tr, h1Request(t, context.Background(), http.MethodGet, hostOf(app.URL), ""))
	bad := h1Request(t, context.Background(), http.MethodGet, hostOf(app.URL), "")
	bad.Header["X-Bad"] = []string{"a\r\nX-Injected: 1"}
	if _, err := tr.RoundTrip(bad); err == nil {
		t.Fatal("a header value with a newline was sent")
	}
	roundTripBody(t, tr, h1Request(t, context.Background(), http.MethodGet, hostOf(app.URL), ""))
	if n := conns.opened.Load(); n != 1 {
		t.Errorf("the app saw %d connections, want 1", n)
	}
}

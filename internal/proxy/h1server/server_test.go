package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/serverlimits"
)

// testServer serves h on a loopback listener until the test ends.
func testServer(t *testing.T, h http.Handler) (*Server, string) {
	t.Helper()
	srv := New(Config{Handler: h, HeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	return srv, serveOn(t, srv, nil)
}

// serveOn serves srv on a loopback listener until the test ends, each accepted
// connection passed through wrap first when it is not nil, and returns its address.
func serveOn(tb testing.TB, srv *Server, wrap func(net.Conn) net.Conn) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if wrap != nil {
				c = wrap(c)
			}
			wg.Go(func() {
				if h2c := srv.ServeConn(c); h2c != nil {
					h2c.Close()
				}
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		wg.Wait()
	})
	return ln.Addr().String()
}

// exchange writes raw to a new connection and returns what the server sends until
// it closes the connection (at most 5s).
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading the answers: %v (so far %q)", err, out)
	}
	return date.ReplaceAllString(string(out), "")
}

// date matches the Date field the server adds, which exchange leaves out.
var date = regexp.MustCompile(`Date: [^\r]*\r\n`)

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "connection reset") }

// testHandler answers by path.
func testHandler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		if v := r.Trailer.Get("T"); v != "" {
			w.Header().Set("X-Trailer", v)
		}
		w.Write(b)
	})
	mux.HandleFunc("/copy", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, strings.NewReader("copied")) // through ReadFrom
	})
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", 5000))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "T")
		io.WriteString(w, "ab")
		w.(http.Flusher).Flush()
		io.WriteString(w, "cd")
		w.Header().Set("T", "v")
		w.Header().Set(http.TrailerPrefix+"U", "w")
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a>")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "hello")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
			t.Errorf("write to a 204: %v, want %v", err, http.ErrBodyNotAllowed)
		}
	})
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/ignore", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		mux.ServeHTTP(w, r)
	})
}

const (
	host  = "Host: a\r\n"
	end   = "GET /hello HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"
	hello = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	// helloClose answers end: the connection was kept alive up to it.
	helloClose = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello"
)

func TestExchanges(t *testing.T) {
	_, addr := testServer(t, testHandler(t))
	big := strings.Repeat("a", 5000)
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "keep-alive", raw: "GET /hello HTTP/1.1\r\n" + host + "\r\n" + end, want: hello + helloClose},
		{name: "pipelined", raw: "GET /hello HTTP/1.1\r\n" + host + "\r\nGET /hello HTTP/1.1\r\n" + host + "\r\n" + end, want: hello + hello + helloClose},
		{name: "HTTP/1.0 closes", raw: "GET /hello HTTP/1.0\r\n\r\n" + end,
			want: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello"},
		{name: "HTTP/1.0 keep-alive", raw: "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + end,
			want: "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\nhello" + helloClose},
		{name: "HTTP/1.0 unknown length", raw: "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + end,
			want: "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + big},
		{name: "client closes", raw: "GET /hello HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n" + end, want: helloClose},
		{name: "handler closes", raw: "GET /close HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nbye"},
		{name: "io.Copy", raw: "GET /copy HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\ncopied" + helloClose},
		{name: "declared length", raw: "GET /length HTTP/1.1\r\n" + host + "\r\n" + end, want: hello + helloClose},
		{name: "body short of its length", raw: "GET /short HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain\r\n\r\nhello"},
		{name: "big body is chunked", raw: "GET /big HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + big + "\r\n0\r\n\r\n" + helloClose},
		{name: "flush and trailers", raw: "GET /stream HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: T\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\nT: v\r\nU: w\r\n\r\n" + helloClose},
		{name: "POST with length", raw: "POST /echo HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc" + helloClose},
		{name: "chunked body and trailer", raw: "POST /echo HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\nT: v\r\n\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\nX-Trailer: v\r\n\r\nabc" + helloClose},
		{name: "100-continue", raw: "POST /echo HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc" + end,
			want: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nabc" + helloClose},
		{name: "100-continue, body not read", raw: "POST /ignore HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nok"},
		{name: "unknown expectation", raw: "POST /echo HTTP/1.1\r\n" + host + "Expect: teapot\r\nContent-Length: 3\r\n\r\nabc",
			want: "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"},
		{name: "unread body is drained", raw: "POST /ignore HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok" + helloClose},
		{name: "early hints", raw: "GET /early HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 103 Early Hints\r\nContent-Type: text/plain\r\nLink: </a>\r\n\r\n" + hello + helloClose},
		{name: "HEAD", raw: "HEAD /length HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n" + helloClose},
		{name: "204", raw: "GET /nocontent HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n" + helloClose},
		{name: "304", raw: "GET /notmodified HTTP/1.1\r\n" + host + "\r\n" + end,
			want: "HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\n\r\n" + helloClose},
		{name: "panic closes", raw: "GET /panic HTTP/1.1\r\n" + host + "\r\n" + end, want: ""},
		{name: "abort closes", raw: "GET /abort HTTP/1.1\r\n" + host + "\r\n" + end, want: ""},
		{name: "missing Host", raw: "GET /hello HTTP/1.1\r\n\r\n" + end,
			want: "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header"},
		{name: "malformed head", raw: "GET /hello\r\n\r\n" + end,
			want: "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: malformed request"},
		{name: "upgrade", raw: "GET /upgrade HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n",
			want: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\necho: ping\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, exchange(t, addr, tt.raw)); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLongUnreadBody: a body the handler left unread beyond what is drained closes
// the connection, after the client could read the answer (no reset first), even
// while the client is still sending it.
func TestLongUnreadBody(t *testing.T) {
	_, addr := testServer(t, testHandler(t))
	for _, size := range []int{maxDrain + 1, 16 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go func() {
				io.WriteString(c, "POST /ignore HTTP/1.1\r\n"+host+"Content-Length: "+strconv.Itoa(size)+"\r\n\r\n")
				io.Copy(c, io.LimitReader(zeros{}, int64(size))) // fails once the server closes
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "ok" || err != nil || !resp.Close {
				t.Errorf("answer: %d %q %v, close %v; want 200 %q and the connection closed", resp.StatusCode, b, err, resp.Close, "ok")
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestClientGoneCancelsRequest: a client that closes its connection while its
// request is served (past watchDelay) cancels the request's context.
func TestClientGoneCancelsRequest(t *testing.T) {
	for _, body := range []string{"", "abc"} {
		t.Run("body "+body, func(t *testing.T) {
			started, cancelled := make(chan struct{}), make(chan error, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				close(started)
				select {
				case <-r.Context().Done():
					cancelled <- r.Context().Err()
				case <-time.After(10 * time.Second):
					cancelled <- errors.New("not cancelled within 10s")
				}
			})
			_, addr := testServer(t, h)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "POST / HTTP/1.1\r\n"+host+"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
			<-started
			c.Close()
			if err := <-cancelled; !errors.Is(err, context.Canceled) {
				t.Errorf("request context: %v, want %v", err, context.Canceled)
			}
		})
	}
}

// TestSlowRequestServedWhenClientStays: the watch of a slow request leaves the
// connection as it found it: the next pipelined request is served after it.
func TestSlowRequestServedWhenClientStays(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		if r.URL.Path == "/slow" {
			select {
			case <-r.Context().Done():
				t.Errorf("slow request cancelled: %v", r.Context().Err())
			case <-time.After(3 * watchDelay):
			}
		}
		io.WriteString(w, r.URL.Path)
	})
	_, addr := testServer(t, h)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/slow", "/fast", "/slow"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\n"+host+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != path {
			t.Errorf("answer to %s: %q", path, b)
		}
	}
}

// TestContextEndsWithRequest: the request's context is cancelled once the handler
// returns, and a body read after it fails rather than read the next request.
func TestContextEndsWithRequest(t *testing.T) {
	type seen struct {
		ctx  context.Context
		body io.Reader
	}
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			got <- seen{r.Context(), r.Body}
		}
		w.Header()["Date"] = nil
		io.WriteString(w, "ok")
	})
	_, addr := testServer(t, h)
	out := exchange(t, addr, "POST /first HTTP/1.1\r\n"+host+"Content-Length: 3\r\n\r\nabc"+"GET /second HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n")
	if n := strings.Count(out, "HTTP/1.1 200 OK"); n != 2 {
		t.Errorf("%d answers, want 2: %q", n, out)
	}
	s := <-got
	if err := s.ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("context after the request: %v, want %v", err, context.Canceled)
	}
	if _, err := s.body.Read(make([]byte, 1)); err != http.ErrBodyReadAfterClose {
		t.Errorf("body read after the request: %v, want %v", err, http.ErrBodyReadAfterClose)
	}
}

// TestH2CHandedBack: a connection that starts with the HTTP/2 preface is returned
// with the preface still to read.
func TestH2CHandedBack(t *testing.T) {
	srv := New(Config{Handler: http.NotFoundHandler(), HeaderTimeout: 2 * time.Second, IdleTimeout: time.Second})
	client, server := net.Pipe()
	defer client.Close()
	go io.WriteString(client, string(serverlimits.H2Preface)+"frames")
	h2c := srv.ServeConn(server)
	if h2c == nil {
		t.Fatal("an HTTP/2 connection was served as HTTP/1.x")
	}
	defer h2c.Close()
	want := string(serverlimits.H2Preface) + "frames"
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(h2c, buf); err != nil || string(buf) != want {
		t.Errorf("handed-back connection reads %q, %v; want %q", buf, err, want)
	}
}

// TestDrain: once draining, a response closes its connection and idle connections
// are closed.
func TestDrain(t *testing.T) {
	srv, addr := testServer(t, testHandler(t))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(idle)
	io.WriteString(idle, "GET /hello HTTP/1.1\r\n"+host+"\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.Close {
		t.Fatalf("before the drain: %v, %v; want a keep-alive answer", resp, err)
	}
	io.ReadAll(resp.Body)
	srv.Drain()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after the drain: %v, want it closed (EOF)", err)
	}
	got := exchange(t, addr, "GET /hello HTTP/1.1\r\n"+host+"\r\n")
	if diff := cmp.Diff(helloClose, got); diff != "" {
		t.Errorf("answer while draining (-want +got):\n%s", diff)
	}
}

// TestShutdownLetsRequestsFinish: Shutdown waits for a request in flight, whose
// answer closes the connection, and refuses new connections.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Header()["Date"] = nil
		io.WriteString(w, "done")
	})
	srv, addr := testServer(t, h)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\n"+host+"\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for !srv.draining.Load() {
		runtime.Gosched()
	}
	close(release)
	out, _ := io.ReadAll(c)
	want := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\ndone"
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("answer in flight at shutdown (-want +got):\n%s", diff)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	a, b := net.Pipe()
	defer a.Close()
	if h2c := srv.ServeConn(b); h2c != nil {
		t.Error("a connection after the shutdown was handed back")
	}
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("connection after the shutdown: %v, want it closed", err)
	}
}

// TestIdleTimeout: a kept-alive connection with no next request is closed.
func TestIdleTimeout(t *testing.T) {
	srv := New(Config{Handler: testHandler(t), HeaderTimeout: 5 * time.Second, IdleTimeout: 50 * time.Millisecond})
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeConn(server) }()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	go io.WriteString(client, "GET /hello HTTP/1.1\r\n"+host+"\r\n")
	got, err := io.ReadAll(client)
	if err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("reading: %v", err)
	}
	if !date.Match(got) {
		t.Errorf("answer %q has no Date", got)
	}
	if diff := cmp.Diff(hello, date.ReplaceAllString(string(got), "")); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	<-done
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the connection was not closed")
	}
}

// TestHeaderNotCarriedOver: the response header map is used again by the
// connection's next request, empty.
func TestHeaderNotCarriedOver(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(w.Header()); n != 0 {
			t.Errorf("%s: the response header has %d fields at the start: %v", r.URL.Path, n, w.Header())
		}
		if r.URL.Path == "/first" {
			w.Header().Set("X-First", "1")
			w.Header()["Trailer"] = []string{"X-T"}
		}
		io.WriteString(w, r.URL.Path)
	}))
	got := exchange(t, addr, "GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	_, second, ok := strings.Cut(got, "/first")
	if !ok || !strings.Contains(second, "/second") || strings.Contains(second, "X-First") || strings.Contains(second, "Trailer") {
		t.Errorf("answers:\n%s\nwant the second without the first's X-First and Trailer", got)
	}
}

package serverlimits

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkKeepAliveGET measures one GET on a keep-alive connection to a net/http
// server, with the guard and Handler (guarded) and without (plain): the guard's cost
// per request.
func BenchmarkKeepAliveGET(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	req := []byte("GET /path?q=1 HTTP/1.1\r\nHost: echo\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Request-Id: 0123456789abcdef\r\n\r\n")
	benchKeepAlive(b, ok, req)
}

// BenchmarkKeepAlivePost is BenchmarkKeepAliveGET with the benchmark's workload: a
// 1 KiB body, read by the handler and echoed.
func BenchmarkKeepAlivePost(b *testing.B) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	req := []byte("POST /echo HTTP/1.1\r\nHost: echo\r\nUser-Agent: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n")
	req = append(req, bytes.Repeat([]byte("x"), 1024)...)
	benchKeepAlive(b, echo, req)
}

func benchKeepAlive(b *testing.B, ok http.Handler, req []byte) {
	for _, bc := range []struct {
		name    string
		guarded bool
	}{{"plain", false}, {"guarded", true}} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			lim := Default()
			srv := &http.Server{Handler: ok}
			var l net.Listener = ln
			if bc.guarded {
				srv = lim.Server(ok, nil)
				l = lim.Listener(ln)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// repeatConn serves the same request, whole, on every read.
type repeatConn struct {
	net.Conn
	req []byte
}

func (c *repeatConn) Read(p []byte) (int, error) { return copy(p, c.req), nil }

// BenchmarkGuardRead is the guard alone passing the benchmark's 1 KiB POST, read
// into a 4 KiB buffer as net/http reads it: the guard's own cost per request.
func BenchmarkGuardRead(b *testing.B) {
	req := []byte("POST /echo HTTP/1.1\r\nHost: echo\r\nUser-Agent: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n")
	req = append(req, bytes.Repeat([]byte("x"), 1024)...)
	g := Default().Guard(&repeatConn{req: req})
	p := make([]byte, 4096)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		for n := 0; n < len(req); {
			m, err := g.Read(p[:min(len(p), len(req)-n)])
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
	}
}

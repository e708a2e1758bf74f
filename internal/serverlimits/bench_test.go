package serverlimits

import (
	"bufio"
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
			req := []byte("GET /path?q=1 HTTP/1.1\r\nHost: echo\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Request-Id: 0123456789abcdef\r\n\r\n")
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

package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkServe is one keep-alive connection over loopback: 1 KiB POSTs that the
// handler echoes (the mesh benchmark's workload), served by this package's loop
// and, for comparison, by net/http's server. Allocations include the client's
// (bufio, http.ReadResponse).
func BenchmarkServe(b *testing.B) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "1024")
		w.Write(body)
	})
	b.Run("h1server", func(b *testing.B) {
		srv := New(Config{Handler: echo, HeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute})
		benchServe(b, func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go srv.ServeConn(c)
			}
		})
	})
	b.Run("net-http", func(b *testing.B) {
		srv := &http.Server{Handler: echo, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
		benchServe(b, func(ln net.Listener) { srv.Serve(ln) })
	})
}

func benchServe(b *testing.B, serve func(net.Listener)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go serve(ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
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

package listener

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/proxy/runtime"
)

func TestClassify(t *testing.T) {
	type result struct {
		App  string
		Done bool
	}
	tests := []struct {
		name string
		in   string
		want result
	}{
		{name: "empty", in: "", want: result{}},
		{name: "GET", in: "GET / HTTP/1.1\r\nHost: x\r\n", want: result{runtime.AppHTTP11, true}},
		{name: "HTTP/1.0 with LF", in: "POST /a?b=c HTTP/1.0\n", want: result{runtime.AppHTTP11, true}},
		{name: "absolute form", in: "GET http://echo:8080/ HTTP/1.1\r\n", want: result{runtime.AppHTTP11, true}},
		{name: "custom method", in: "PURGE /x HTTP/1.1\r\n", want: result{runtime.AppHTTP11, true}},
		{name: "method only", in: "GET", want: result{}},
		{name: "up to the target", in: "GET /index.ht", want: result{}},
		{name: "up to the version", in: "GET / HTTP/1", want: result{}},
		{name: "before the LF", in: "GET / HTTP/1.1\r", want: result{}},
		{name: "HTTP/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: result{runtime.AppH2C, true}},
		{name: "part of the preface", in: "PRI * HTTP/2.0\r\n", want: result{}},
		{name: "not quite the preface", in: "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", want: result{"", true}},
		{name: "HTTP/2 request line", in: "GET / HTTP/2.0\r\n", want: result{"", true}},
		{name: "text protocol", in: "hello world\n", want: result{"", true}},
		{name: "redis", in: "*1\r\n$4\r\nPING\r\n", want: result{"", true}},
		{name: "binary", in: "\x16\x03\x01\x02\x00", want: result{"", true}},
		{name: "space first", in: " GET / HTTP/1.1\r\n", want: result{"", true}},
		{name: "two spaces", in: "GET  / HTTP/1.1\r\n", want: result{"", true}},
		{name: "trailing garbage", in: "GET / HTTP/1.1 x\r\n", want: result{"", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app, done := classify([]byte(tt.in))
			if diff := cmp.Diff(tt.want, result{app, done}); diff != "" {
				t.Errorf("classify(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestSniff feeds a connection in pieces and checks what sniff decides and that
// every byte is still there to read.
func TestSniff(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		close  bool // the client closes after writing
		want   string
	}{
		{name: "HTTP/1.1 in pieces", writes: []string{"GE", "T /pa", "th HTTP/1.", "1\r\nHost: a\r\n\r\n"}, want: runtime.AppHTTP11},
		{name: "h2c preface in pieces", writes: []string{"PRI * HTTP/2.0\r\n", "\r\nSM\r\n\r\n"}, want: runtime.AppH2C},
		{name: "TCP", writes: []string{"hello\n"}, want: ""},
		{name: "silent client (server speaks first)", want: ""},
		{name: "partial request line, then silence", writes: []string{"GET /"}, want: ""},
		{name: "closed early", writes: []string{"GET /"}, close: true, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client, server := net.Pipe()
			defer server.Close()
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				for _, w := range tt.writes {
					if _, err := client.Write([]byte(w)); err != nil {
						return
					}
				}
				if tt.close {
					client.Close()
				}
			}()
			defer client.Close()
			pc := &peekedConn{Conn: server}
			start := time.Now()
			got, err := sniff(pc, time.Second)
			if err != nil {
				t.Fatalf("sniff: %v", err)
			}
			if got != tt.want {
				t.Errorf("sniff = %q, want %q", got, tt.want)
			}
			if d := time.Since(start); tt.want != "" && d > 900*time.Millisecond {
				t.Errorf("sniff took %v to recognize HTTP; want it as soon as the bytes are there", d)
			}
			select {
			case <-wrote:
			case <-ctx.Done():
				t.Fatal("the client's writes did not finish")
			}
			client.Close()
			all, _ := io.ReadAll(pc)
			want := ""
			for _, w := range tt.writes {
				want += w
			}
			if string(all) != want {
				t.Errorf("bytes read after sniffing = %q, want %q", all, want)
			}
		})
	}
}

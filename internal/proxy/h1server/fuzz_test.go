package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"trellis.dev/trellis/internal/serverlimits"
)

// FuzzServeConn sends arbitrary bytes on a connection to the server, behind the
// framing guard as on the sidecar's listeners, closes its sending side and reads
// what comes back. It checks that the server ends the connection (no hang), that
// what it sent is a well-formed sequence of HTTP/1.1 responses with nothing after
// one that says "Connection: close", and that every request the handler saw got
// exactly one answer. The handler answers 204 with the method and the body's length,
// so no response has a body whose framing depends on the request (HEAD).
func FuzzServeConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x16\x03\x01\x00\x05hello",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"garbage\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}

	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Body-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusNoContent)
	})
	lim := serverlimits.Default()
	lim.HeaderTimeout = time.Second
	srv := New(Config{Handler: lim.Handler(h), HeaderTimeout: time.Second, IdleTimeout: time.Second})
	addr := serveOn(f, srv, lim.Guard)

	f.Fuzz(func(t *testing.T, raw []byte) {
		before := calls.Load()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write(raw)
			c.(*net.TCPConn).CloseWrite()
		}()
		out, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server neither answered nor closed the connection within 5s; it sent %q", out)
		}
		// The handler's calls for this connection are over once the server has closed
		// it: it closes only after the answer to the last request it served.
		served := calls.Load() - before

		br := bufio.NewReader(bytes.NewReader(out))
		var answered int64
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d does not parse: %v\nsent %q\ngot %q", answered+1, err, raw, out)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil && resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("response %d: reading its body: %v\ngot %q", answered+1, err, out)
			}
			if resp.StatusCode == http.StatusNoContent {
				answered++
				if len(body) != 0 {
					t.Fatalf("a 204 with a body %q", body)
				}
			}
			if resp.Close || resp.StatusCode == http.StatusSwitchingProtocols {
				if rest, _ := io.ReadAll(br); len(rest) != 0 && resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("%q sent after a response that closes the connection\nsent %q", rest, raw)
				}
				break
			}
		}
		if answered != served {
			t.Fatalf("the handler served %d requests, %d answers came back\nsent %q\ngot %q", served, answered, raw, out)
		}
	})
}

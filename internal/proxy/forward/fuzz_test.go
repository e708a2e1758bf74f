package forward

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http/httpguts"
)

// panicLog records what net/http logs; a handler panic is logged as "panic serving"
// (the server recovers it and closes the connection).
type panicLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *panicLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *panicLog) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.buf.String()
	p.buf.Reset()
	return s
}

// hopByHop are the headers a proxy never forwards (RFC 9110, section 7.6.1), besides
// those the Connection header names.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}

// FuzzForwardHeaders sends a request whose method, target and header block are any
// bytes, on a fresh connection, to the sidecar's HTTP path (a route that adds and
// removes headers, in front of a real backend). Whatever Go's HTTP server accepts:
//   - the handler never panics;
//   - the backend never receives a hop-by-hop header, a header the request's
//     Connection header names, or a client's x-forwarded-client-cert (this is a
//     plaintext listener: the sidecar sets it only from a verified peer);
//   - the client's Forwarded and X-Forwarded-* headers reach the backend unchanged,
//     and the sidecar adds none;
//   - the answer is the backend's, or the sidecar's own 4xx, or, for a body that never
//     comes, a closed connection.
func FuzzForwardHeaders(f *testing.F) {
	for _, s := range []struct{ method, target, headers string }{
		{"GET", "/", "X-User: alice"},
		{"GET", "/a?b=c", "Connection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers"},
		{"POST", "/", "Content-Length: 3\r\nTransfer-Encoding: chunked"},
		{"GET", "/", "X-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/default/sa/admin\r\nx-forwarded-client-cert: Hash=00"},
		{"GET", "/", "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nForwarded: for=1.2.3.4;proto=https\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: admin"},
		{"GET", "/", "Upgrade: websocket\r\nConnection: Upgrade\r\nProxy-Connection: keep-alive"},
		{"GET", "/", "X-Remove-Me: 1\r\nx-added: spoof"},
		{"GET", "/", "Connection: X-Forwarded-For\r\nX-Forwarded-For: 9.9.9.9"},
		{"GET", "/", "Host: other\r\nContent-Length: -1"},
		{"GET", "/", "Foo: a\r\n b"},
		{"GET", "/", "Foo: \x00"},
		{"PRI", "*", ""},
		{"CONNECT", "app:80", ""},
		{"GET", "http://app/x", "Proxy-Authorization: Basic eDp5"},
	} {
		f.Add(s.method, s.target, s.headers)
	}
	// The backend hands over the headers of each request it gets, by X-Fuzz-Seq: a
	// request of an earlier run may arrive late.
	var (
		mu   sync.Mutex
		seen = map[string]http.Header{}
	)
	be := newBackend(f, "app", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("X-Fuzz-Seq")] = r.Header.Clone()
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	var seq int
	route := to("app", func(r *routev3.Route) {
		r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, hv("x-added", "sidecar", true))
		r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, "x-remove-me")
	})
	h := newHarness(f, []*routev3.Route{route}, static("app", addrs(be)))
	addr := hostOf(h.url)
	logs := &panicLog{}
	prev := log.Writer()
	log.SetOutput(logs)
	f.Cleanup(func() { log.SetOutput(prev) })

	f.Fuzz(func(t *testing.T, method, target, headers string) {
		seq++
		id := strconv.Itoa(seq)
		raw := method + " " + target + " HTTP/1.1\r\nHost: app\r\nX-Fuzz-Seq: " + id + "\r\n" + headers + "\r\n\r\n"
		sent, sentErr := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))

		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite() // a body the headers promise never comes
		resp, respErr := http.ReadResponse(bufio.NewReader(c), nil)
		if respErr == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if p := logs.take(); strings.Contains(p, "panic") {
			t.Fatalf("the handler panicked on %q:\n%s", raw, p)
		}
		if respErr != nil {
			if sentErr == nil && sent.ContentLength == 0 && len(sent.TransferEncoding) == 0 && sent.Method != "CONNECT" {
				t.Fatalf("no answer to a complete request %q: %v", raw, respErr)
			}
			return
		}
		if resp.StatusCode >= 500 {
			if sentErr == nil && sent.ContentLength == 0 && len(sent.TransferEncoding) == 0 {
				t.Fatalf("%d for %q", resp.StatusCode, raw)
			}
		}
		mu.Lock()
		up, ok := seen[id]
		clear(seen)
		mu.Unlock()
		if !ok {
			return // the sidecar or Go's server answered itself
		}
		if sentErr != nil {
			t.Fatalf("the backend got a request that does not parse: %q (%v)", raw, sentErr)
		}
		checkUpstreamHeaders(t, raw, sent.Header, up)
	})
}

func checkUpstreamHeaders(t *testing.T, raw string, sent, up http.Header) {
	t.Helper()
	drop := slices.Clone(hopByHop)
	for _, v := range sent["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textproto.TrimString(name); httpguts.ValidHeaderFieldName(name) {
				drop = append(drop, http.CanonicalHeaderKey(name))
			}
		}
	}
	// An upgrade (WebSocket) is forwarded as one: Connection: Upgrade and the
	// client's Upgrade, nothing else the Connection header named.
	upgrade := httpguts.HeaderValuesContainsToken(sent["Connection"], "Upgrade") && sent.Get("Upgrade") != ""
	for _, name := range drop {
		if name == "X-Added" {
			continue // the route sets it anew
		}
		if upgrade && (name == "Connection" && slices.Equal(up[name], []string{"Upgrade"}) ||
			name == "Upgrade" && slices.Equal(up[name], sent[name][:1])) {
			continue
		}
		if _, ok := up[name]; ok {
			t.Fatalf("the backend got %s: %q (request %q)", name, up[name], raw)
		}
	}
	if v, ok := up[xfccHeader]; ok {
		t.Fatalf("the backend got a client's %s: %q (request %q)", xfccHeader, v, raw)
	}
	if v := up.Values("Te"); len(v) > 0 && !slices.Equal(v, []string{"trailers"}) {
		t.Fatalf("the backend got TE: %q (request %q)", v, raw)
	}
	for _, name := range forwardedHeaders {
		if slices.Contains(drop, name) {
			continue
		}
		if !slices.Equal(sent[name], up[name]) {
			t.Fatalf("%s: the client sent %q, the backend got %q (request %q)", name, sent[name], up[name], raw)
		}
	}
	if _, ok := up["X-Remove-Me"]; ok {
		t.Fatalf("the route removes x-remove-me; the backend got it (request %q)", raw)
	}
	if v := up.Values("X-Added"); !slices.Equal(v, []string{"sidecar"}) {
		t.Fatalf("the route sets x-added: sidecar; the backend got %q (request %q)", v, raw)
	}
}

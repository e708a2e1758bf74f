package serverlimits

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"trellis.dev/trellis/internal/serverlimits/attacktest"
)

// recorder is a backend handler that records the requests it is given.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	rec.mu.Lock()
	line := r.Method + " " + r.URL.Path + " " + string(body)
	if err != nil {
		line += " (body error)"
	}
	rec.seen = append(rec.seen, line)
	rec.mu.Unlock()
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "ok "+r.URL.Path)
}

func (rec *recorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen...)
}

// serve starts a server with lim on loopback and returns its address.
func serve(t *testing.T, lim Limits, h http.Handler) (string, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := lim.Server(h, nil)
	gl := lim.Listener(ln)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(gl) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), gl
}

// exchange writes raw to a new connection and returns the statuses of the answers
// read until the server closes the connection (or 5s pass).
func exchange(t *testing.T, addr, raw string) (statuses []int, closed bool) {
	t.Helper()
	res, err := attacktest.Exchange(addr, nil, raw, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return res.Statuses, res.Closed
}

func TestGuardHTTP1(t *testing.T) {
	const host = "Host: a\r\n"
	many := strings.Repeat("X-A: b\r\n", DefaultMaxHeaders+1)
	big := "X-Big: " + strings.Repeat("b", DefaultMaxHeaderBytes) + "\r\n"
	tests := []struct {
		name string
		raw  string
		want []int    // statuses, in order; the connection must then be closed (keep-alive ones by the idle timeout)
		seen []string // what the backend got
	}{
		{name: "plain GET", raw: "GET /a HTTP/1.1\r\n" + host + "\r\n", want: []int{200}, seen: []string{"GET /a "}},
		{name: "pipelined", raw: "GET /a HTTP/1.1\r\n" + host + "\r\nGET /b HTTP/1.1\r\n" + host + "\r\n",
			want: []int{200, 200}, seen: []string{"GET /a ", "GET /b "}},
		{name: "chunked body", raw: "POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n",
			want: []int{200}, seen: []string{"POST /c abcde"}},
		{name: "trailers then a request", raw: "POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nT: v\r\n\r\nGET /b HTTP/1.1\r\n" + host + "\r\n",
			want: []int{200, 200}, seen: []string{"POST /c a", "GET /b "}},
		{name: "CL+TE smuggling", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
			want: []int{400}},
		{name: "TE+CL smuggling", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n",
			want: []int{400}},
		{name: "duplicate Content-Length", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", want: []int{400}},
		{name: "conflicting Content-Length", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 30\r\n\r\nabc", want: []int{400}},
		{name: "duplicate Host", raw: "GET / HTTP/1.1\r\n" + host + "Host: b\r\n\r\n", want: []int{400}},
		{name: "Content-Length list", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 3, 3\r\n\r\nabc", want: []int{400}},
		{name: "obfuscated TE xchunked", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "obfuscated TE list", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "obfuscated TE twice", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "TE space before colon", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "TE on HTTP/1.0", raw: "POST / HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "TE folded", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", want: []int{400}},
		{name: "bare LF in head", raw: "GET / HTTP/1.1\n" + host + "\n", want: []int{400}},
		{name: "bare LF after header", raw: "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", want: []int{400}},
		{name: "bare CR in value", raw: "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", want: []int{400}},
		{name: "NUL in value", raw: "GET / HTTP/1.1\r\n" + host + "X: a\x00b\r\n\r\n", want: []int{400}},
		{name: "control in path", raw: "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", want: []int{400}},
		{name: "invalid method", raw: "G(T / HTTP/1.1\r\n" + host + "\r\n", want: []int{400}},
		{name: "invalid version", raw: "GET / HTTP/1.2\r\n" + host + "\r\n", want: []int{400}},
		{name: "HTTP/2.0 in request line", raw: "GET / HTTP/2.0\r\n" + host + "\r\n", want: []int{400}},
		{name: "negative length", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", want: []int{400}},
		{name: "huge length", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999\r\n\r\n", want: []int{400}},
		{name: "huge chunk", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", seen: []string{"POST /  (body error)"}},
		{name: "chunk without CRLF", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n", seen: []string{"POST / abc (body error)"}},
		{name: "too many headers", raw: "GET / HTTP/1.1\r\n" + host + many + "\r\n", want: []int{431}},
		{name: "header block too large", raw: "GET / HTTP/1.1\r\n" + host + big + "\r\n", want: []int{431}},
		{name: "good then smuggling", raw: "GET /a HTTP/1.1\r\n" + host + "\r\nPOST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			want: []int{200, 400}, seen: []string{"GET /a "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			addr, _ := serve(t, Limits{IdleTimeout: 300 * time.Millisecond}, rec)
			got, closed := exchange(t, addr, tt.raw)
			if !slices.Equal(got, tt.want) && !(len(tt.want) == 0 && len(got) <= 1 && allClientErrors(got)) {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
			if !closed {
				t.Errorf("connection not closed")
			}
			seen := rec.requests()
			if strings.Join(seen, "|") != strings.Join(tt.seen, "|") {
				t.Errorf("backend saw %q, want %q", seen, tt.seen)
			}
			for _, s := range seen {
				if strings.Contains(s, "smuggled") {
					t.Errorf("smuggled request reached the backend: %q", s)
				}
			}
			t.Logf("attack %q: answers %v, connection closed %v, backend saw %d request(s)", tt.name, got, closed, len(seen))
		})
	}
}

func allClientErrors(s []int) bool {
	for _, c := range s {
		if c < 400 || c >= 500 {
			return false
		}
	}
	return true
}

// TestGuardSlowloris: a head sent a byte at a time is cut at HeaderTimeout, and a
// well-behaved client is served meanwhile.
func TestGuardSlowloris(t *testing.T) {
	rec := &recorder{}
	addr, _ := serve(t, Limits{HeaderTimeout: 300 * time.Millisecond}, rec)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	sent := 0
	head := "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("s", 200)
	var werr error
	for i := 0; i < len(head) && ctx.Err() == nil; i++ {
		if _, werr = c.Write([]byte{head[i]}); werr != nil {
			break
		}
		sent++
		if got, _ := exchange(t, addr, "GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !slices.Equal(got, []int{200}) {
			t.Fatalf("well-behaved client got %v during slowloris", got)
		}
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, rerr := c.Read(make([]byte, 1))
	if rerr == nil {
		t.Fatal("slow connection still open")
	}
	t.Logf("slowloris: %d bytes sent one at a time, connection closed after %v (write error %v, read %v); well-behaved requests served meanwhile", sent, time.Since(start).Round(time.Millisecond), werr, rerr)
}

// TestTLSListener: an HTTPS server behind TLSListener (the admission webhooks')
// refuses the HTTP/1.1 attacks over TLS, cuts a stalled handshake at
// HandshakeTimeout, and serves a well-behaved client.
func TestTLSListener(t *testing.T) {
	cert := selfSigned(t)
	lim := Limits{HandshakeTimeout: 300 * time.Millisecond, IdleTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	srv := lim.Server(rec, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lim.TLSListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	addr := ln.Addr().String()
	client := &tls.Config{InsecureSkipVerify: true}

	attacktest.CheckHTTP1(t, "HTTPS", addr, client, "a", lim.IdleTimeout)
	for _, s := range rec.requests() {
		if strings.Contains(s, attacktest.Smuggled) {
			t.Errorf("smuggled request reached the handler: %q", s)
		}
	}
	start := time.Now()
	res, err := attacktest.Exchange(addr, nil, "\x16\x03\x01\x02\x00\x01", 5*time.Second)
	if err != nil || !res.Closed {
		t.Errorf("stalled handshake: %+v, %v", res, err)
	}
	stalled := time.Since(start)
	if code, err := attacktest.Get(addr, client, "a", "/ok"); err != nil || code != 200 {
		t.Errorf("well-behaved client: %d, %v", code, err)
	}
	t.Logf("HTTPS (TLSListener): stalled handshake closed after %v (timeout %v)", stalled.Round(time.Millisecond), lim.HandshakeTimeout)
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// chunkConn serves a stream in reads of at most chunk bytes.
type chunkConn struct {
	net.Conn
	r     *strings.Reader
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.chunk)]) }

func (c *chunkConn) SetReadDeadline(time.Time) error { return nil }

// TestGuardStreamBytes reads pipelined requests (bodies, chunked bodies, empty lines
// between requests) through the guard in every combination of arrival and read
// sizes: what comes out is the stream without the empty lines, byte for byte,
// whether released bytes are handed out in place or moved.
func TestGuardStreamBytes(t *testing.T) {
	post := "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("0123456789abcdef", 64)
	get := "GET /g HTTP/1.1\r\nHost: a\r\n\r\n"
	chunked := "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n400\r\n" + strings.Repeat("z", 1024) + "\r\n0\r\nT: v\r\n\r\n"
	in := post + get + "\r\n\r\n" + chunked + "\r\n" + get + post + "\r\n" + post + get
	want := post + get + chunked + get + post + post + get
	for _, arrive := range []int{1, 7, 100, 1500, 4096, 1 << 20} {
		for _, read := range []int{1, 13, 512, 4096} {
			g := Default().Guard(&chunkConn{r: strings.NewReader(in), chunk: arrive})
			var out strings.Builder
			p := make([]byte, read)
			for {
				n, err := g.Read(p)
				out.Write(p[:n])
				if err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("arrivals of %d, reads of %d: %v", arrive, read, err)
				}
			}
			if out.String() != want {
				got := out.String()
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Errorf("arrivals of %d, reads of %d: the guard passed %d bytes, want %d; from byte %d: %q, want %q",
					arrive, read, len(got), len(want), i, got[i:min(len(got), i+80)], want[i:min(len(want), i+80)])
			}
		}
	}
}

// TestCopyToResponse: a handler that copies the body to the response (through the
// server's io.ReaderFrom) echoes a good body, and a body that breaks before a byte
// was copied still gets an error answer, not net/http's 200.
func TestCopyToResponse(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	addr, _ := serve(t, Limits{IdleTimeout: 300 * time.Millisecond}, echo)
	const head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tt := range []struct {
		name, body string
		want       []int
	}{
		{"good body", strings.Repeat("400\r\n"+strings.Repeat("b", 1024)+"\r\n", 3) + "0\r\n\r\n", []int{200}},
		{"broken body", "zz\r\n", []int{400}},
	} {
		got, _ := exchange(t, addr, head+tt.body)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: statuses %v, want %v", tt.name, got, tt.want)
		}
	}
}

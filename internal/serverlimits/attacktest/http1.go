// Package attacktest speaks hostile bytes to a listener, for the tests of every
// server of the mesh (docs/limits.md): a catalogue of malformed and smuggling
// HTTP/1.1 requests, slowloris and connection floods, HTTP/2 frame-level attacks
// written with x/net/http2's Framer, and a probe of the process's goroutines and heap
// that checks they return to their baseline afterwards.
//
// Every function dials the address it is given with net.Dial (or tls.Dial) and
// closes what it opened before it returns.
package attacktest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Attack is one raw HTTP/1.1 exchange.
type Attack struct {
	Name string
	// Raw is what the client sends, at once.
	Raw string
	// Want is the status the server must answer before it closes the connection;
	// 0: any 4xx, or none.
	Want int
	// Stalls marks an attack the server can only answer at its idle timeout (a body
	// that never completes).
	Stalls bool
}

// Smuggled is the path the smuggling attacks hide in a second request: a backend
// must never see it.
const Smuggled = "/smuggled"

// HTTP1Attacks are the malformed and ambiguous requests every HTTP listener must
// refuse with a 4xx and a closed connection, host the Host header.
func HTTP1Attacks(host string) []Attack {
	h := "Host: " + host + "\r\n"
	hidden := "GET " + Smuggled + " HTTP/1.1\r\n" + h + "\r\n"
	return []Attack{
		{Name: "CL+TE", Raw: "POST / HTTP/1.1\r\n" + h + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "TE+CL", Raw: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "duplicate Content-Length", Raw: "POST / HTTP/1.1\r\n" + h + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + hidden, Want: 400},
		{Name: "conflicting Content-Length", Raw: "POST / HTTP/1.1\r\n" + h + "Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + hidden, Want: 400},
		{Name: "obfuscated Transfer-Encoding", Raw: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "Transfer-Encoding list", Raw: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "Transfer-Encoding space before colon", Raw: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "Transfer-Encoding folded", Raw: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "bare LF", Raw: "GET / HTTP/1.1\n" + h + "\n" + hidden, Want: 400},
		{Name: "bare LF between headers", Raw: "POST / HTTP/1.1\r\n" + h + "X: y\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, Want: 400},
		{Name: "NUL in header value", Raw: "GET / HTTP/1.1\r\n" + h + "X: a\x00b\r\n\r\n", Want: 400},
		{Name: "control character in path", Raw: "GET /a\x7fb HTTP/1.1\r\n" + h + "\r\n", Want: 400},
		{Name: "invalid method", Raw: "G<T / HTTP/1.1\r\n" + h + "\r\n", Want: 400},
		{Name: "invalid version", Raw: "GET / HTTP/1.7\r\n" + h + "\r\n", Want: 400},
		{Name: "negative Content-Length", Raw: "POST / HTTP/1.1\r\n" + h + "Content-Length: -5\r\n\r\n", Want: 400},
		{Name: "huge Content-Length", Raw: "POST / HTTP/1.1\r\n" + h + "Content-Length: 184467440737095516160\r\n\r\n", Want: 400},
		{Name: "too many headers", Raw: "GET / HTTP/1.1\r\n" + h + strings.Repeat("X-A: b\r\n", 101) + "\r\n", Want: 431},
		{Name: "header block over 60 KiB", Raw: "GET / HTTP/1.1\r\n" + h + "X-Big: " + strings.Repeat("b", 61<<10) + "\r\n\r\n", Want: 431},
		{Name: "truncated chunked body", Raw: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n10\r\nabc", Stalls: true},
	}
}

// Result is what a server did with an exchange.
type Result struct {
	// Statuses are the answers read, in order.
	Statuses []int
	// Closed reports that the server closed the connection (within the deadline).
	Closed bool
}

// Refused reports whether r is what an attack must get: the wanted status (any
// 4xx, or none, when want is 0) as the only answer, and a closed connection.
func (r Result) Refused(want int) bool {
	if !r.Closed || len(r.Statuses) > 1 {
		return false
	}
	if len(r.Statuses) == 0 {
		return want == 0
	}
	s := r.Statuses[0]
	if want == 0 {
		return s >= 400 && s < 500
	}
	return s == want
}

// Exchange dials addr (over TLS when cfg is set), sends raw, half-closes when
// halfClose, and reads answers until the server closes the connection or timeout
// passes.
func Exchange(addr string, cfg *tls.Config, raw string, timeout time.Duration) (Result, error) {
	c, err := dial(addr, cfg, timeout)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, raw); err != nil && !closedErr(err) {
		return Result{}, err
	}
	var res Result
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			res.Closed = closedErr(err)
			return res, nil
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.Statuses = append(res.Statuses, resp.StatusCode)
	}
}

func dial(addr string, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if cfg != nil {
		return tls.DialWithDialer(d, "tcp", addr, cfg)
	}
	return d.Dial("tcp", addr)
}

// closedErr reports whether err means the peer closed the connection (rather than
// the deadline passing).
func closedErr(err error) bool {
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// Get sends one well-behaved request on a new connection and returns its status.
func Get(addr string, cfg *tls.Config, host, path string) (int, error) {
	res, err := Exchange(addr, cfg, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n", 5*time.Second)
	if err != nil {
		return 0, err
	}
	if len(res.Statuses) != 1 {
		return 0, errors.New("no answer")
	}
	return res.Statuses[0], nil
}

// CheckHTTP1 sends each of HTTP1Attacks(host) to addr (over TLS when cfg is set) and
// reports, as an error of t naming what is attacked, each one not refused with its
// status and a closed connection. The attacks that stall are sent only when the
// server's idle timeout is under 4s. It logs and returns how many were refused.
func CheckHTTP1(t testing.TB, what, addr string, cfg *tls.Config, host string, idle time.Duration) (refused int) {
	t.Helper()
	var attacks []Attack
	for _, a := range HTTP1Attacks(host) {
		if !a.Stalls || idle < 4*time.Second {
			attacks = append(attacks, a)
		}
	}
	for _, a := range attacks {
		res, err := Exchange(addr, cfg, a.Raw, 5*time.Second)
		if err != nil {
			t.Errorf("%s, %s: %v", what, a.Name, err)
			continue
		}
		if !res.Refused(a.Want) {
			t.Errorf("%s, %s: answers %v, closed %v; want %d then a closed connection", what, a.Name, res.Statuses, res.Closed, a.Want)
			continue
		}
		refused++
	}
	t.Logf("%s: %d of %d HTTP/1.1 attacks refused (4xx, connection closed)", what, refused, len(attacks))
	return refused
}

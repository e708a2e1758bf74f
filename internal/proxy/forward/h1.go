package forward

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/sys/unix"
)

// maxInlineBody is the largest request body h1Transport sends itself: it reads the
// whole body before writing, so that headers and body leave in one write. Larger
// bodies, and bodies of unknown length, stream through the fallback transport.
const maxInlineBody = 64 << 10

// h1Transport is the HTTP/1.1 client of a cluster's connection pool. It serves a
// request on the caller's goroutine: it takes an idle connection of the endpoint (or
// dials one), writes the request, headers and body, in one write, reads the response
// headers, and hands the connection back to the pool when the response body has been
// read to its end. net/http's Transport runs a reader and a writer goroutine per
// connection and passes every request and response between them and the caller; on
// the sidecar's path that is four goroutine switches and an extra write (it flushes
// the headers before the body) per request.
//
// What it does not serve goes to fallback (a net/http Transport with the same dialer):
// bodies of unknown length (chunked) or larger than maxInlineBody, request trailers,
// and protocol upgrades.
//
// A connection is checked before it is reused (a non-blocking peek on its socket: the
// server may have closed it while it was idle); a request that fails on a reused
// connection before any byte of the response arrived is sent again, once, on a new
// connection when it is idempotent or could not be written. Idle connections are
// closed after idleTimeout (0: never). Cancelling the request's context closes the
// exchange: the connection's deadline is set in the past, which unblocks its reads
// and writes, and the connection is not reused.
type h1Transport struct {
	dial        dialFunc
	idleTimeout time.Duration
	fallback    *http.Transport

	mu    sync.Mutex
	idle  map[string][]*h1Conn
	sweep *time.Timer // closes connections idle for idleTimeout; nil when none waits
}

var _ http.RoundTripper = (*h1Transport)(nil)

func newH1Transport(dial dialFunc, idleTimeout time.Duration, fallback *http.Transport) *h1Transport {
	return &h1Transport{dial: dial, idleTimeout: idleTimeout, fallback: fallback, idle: map[string][]*h1Conn{}}
}

// h1Conn is one upstream connection, used by one request at a time.
type h1Conn struct {
	t    *h1Transport
	addr string
	nc   net.Conn
	raw  syscall.RawConn // the TCP socket beneath TLS, for the liveness peek; nil if none
	br   *bufio.Reader

	idleSince time.Time
	reused    bool
	// stop ends the watch on the request's context (context.AfterFunc); it returns
	// false once the context has fired and broken the connection with abort (made
	// once per connection).
	stop  func() bool
	abort func()
	// closeAfter: the request or the response asked to close the connection.
	closeAfter bool

	// peek (made once per connection, so a check allocates nothing) fills peekErr.
	peek    func(fd uintptr) bool
	peekBuf [1]byte
	peekErr syscall.Errno
}

// takes reports whether the request is one h1Transport serves itself.
func (t *h1Transport) takes(req *http.Request) bool {
	noBody := req.Body == nil || req.Body == http.NoBody
	switch {
	case req.ContentLength < 0 || req.ContentLength > maxInlineBody:
		return false
	case req.ContentLength == 0 && !noBody: // a client request's way of saying "unknown"
		return false
	case len(req.Trailer) > 0 || req.URL.Opaque != "":
		return false
	}
	_, upgrade := req.Header["Upgrade"]
	return !upgrade
}

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.takes(req) {
		return t.fallback.RoundTrip(req)
	}
	buf := getWriteBuf()
	defer putWriteBuf(buf)
	ctx := req.Context()
	var err error
	for retried := false; ; retried = true {
		var pc *h1Conn
		if pc, err = t.get(ctx, req.URL.Host, retried); err != nil {
			break
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: pc.nc, Reused: pc.reused})
		}
		if !retried {
			// The request is written once into buf (after GotConn, which may ask for
			// "Connection: close"), and sent again from there.
			if *buf, err = appendRequest((*buf)[:0], req); err != nil {
				t.put(pc) // unused: the request could not be written
				break
			}
		}
		var resp *http.Response
		var again bool
		if resp, err, again = pc.roundTrip(ctx, req, *buf); err == nil {
			return resp, nil
		}
		if !again || retried || ctx.Err() != nil {
			break
		}
	}
	if req.Body != nil {
		req.Body.Close()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, err
}

// get returns an idle connection to addr that is still open, or a new one (always a
// new one when fresh).
func (t *h1Transport) get(ctx context.Context, addr string, fresh bool) (*h1Conn, error) {
	for !fresh {
		pc := t.takeIdle(addr)
		if pc == nil {
			break
		}
		if pc.alive() {
			pc.reused = true
			return pc, nil
		}
		pc.nc.Close()
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &h1Conn{t: t, addr: addr, nc: nc, br: bufio.NewReaderSize(nc, 4<<10), raw: rawConn(nc)}, nil
}

// takeIdle pops the most recently used idle connection to addr (its buffers are
// warm), closing those idle for longer than the idle timeout.
func (t *h1Transport) takeIdle(addr string) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[addr]
	for len(conns) > 0 {
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		conns = conns[:len(conns)-1]
		t.idle[addr] = conns
		if t.idleTimeout > 0 && time.Since(pc.idleSince) >= t.idleTimeout {
			pc.nc.Close()
			continue
		}
		return pc
	}
	return nil
}

// put makes pc idle, or closes it when the endpoint has enough idle connections.
func (t *h1Transport) put(pc *h1Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[pc.addr]
	if len(conns) >= maxIdleConnsPerHost {
		pc.nc.Close()
		return
	}
	pc.idleSince = time.Now()
	t.idle[pc.addr] = append(conns, pc)
	if t.idleTimeout > 0 && t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.closeExpired)
	}
}

// closeExpired closes the connections idle for the idle timeout and waits for the
// next ones to expire.
func (t *h1Transport) closeExpired() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	now := time.Now()
	var next time.Duration
	for addr, conns := range t.idle {
		kept := conns[:0]
		for _, pc := range conns {
			if left := t.idleTimeout - now.Sub(pc.idleSince); left > 0 {
				kept = append(kept, pc)
				if next == 0 || left < next {
					next = left
				}
				continue
			}
			pc.nc.Close()
		}
		clear(conns[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
	}
	if next > 0 {
		t.sweep = time.AfterFunc(next, t.closeExpired)
	}
}

// CloseIdleConnections closes the idle connections, its own and the fallback's.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	for addr, conns := range t.idle {
		for _, pc := range conns {
			pc.nc.Close()
		}
		delete(t.idle, addr)
	}
	t.mu.Unlock()
	t.fallback.CloseIdleConnections()
}

// roundTrip writes the request in wire form and reads the response's headers. again
// reports a failure on a reused connection before any byte of the response, for a
// request that may be sent again.
func (pc *h1Conn) roundTrip(ctx context.Context, req *http.Request, wire []byte) (resp *http.Response, err error, again bool) {
	pc.closeAfter = req.Close
	if ctx.Done() != nil {
		if pc.abort == nil {
			pc.abort = func() { pc.nc.SetDeadline(aLongTimeAgo) }
		}
		pc.stop = context.AfterFunc(ctx, pc.abort)
	} else {
		pc.stop = nil
	}
	if _, err := pc.nc.Write(wire); err != nil {
		pc.close()
		return nil, err, pc.reused
	}
	// The first byte of the response first: a connection that ends before it has
	// answered nothing (ReadResponse would not tell).
	if _, err := pc.br.Peek(1); err != nil {
		pc.close()
		return nil, err, pc.reused && isIdempotent(req)
	}
	for {
		if resp, err = http.ReadResponse(pc.br, req); err != nil {
			pc.close()
			return nil, err, false
		}
		// 1xx (100 Continue, 103 Early Hints) precede the response; there is no
		// upgrade here (takes), so a 101 is an error.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		pc.close()
		return nil, errors.New("upstream switched protocols without an upgrade request"), false
	}
	if req.Body != nil {
		req.Body.Close()
	}
	// A body delimited by the end of the connection leaves nothing to reuse.
	if resp.Close || resp.ContentLength < 0 && len(resp.TransferEncoding) == 0 {
		pc.closeAfter = true
	}
	if resp.Body == http.NoBody {
		pc.release(true)
		return resp, nil, false
	}
	// A body of its own per response: the holder of a finished response may still
	// close it after the connection went on to the next request.
	resp.Body = &h1Body{pc: pc, rc: resp.Body}
	return resp, nil, false
}

// release ends the request on pc: the connection goes back to the pool when the
// response was read to its end and nothing asks to close it, else it is closed.
func (pc *h1Conn) release(complete bool) {
	watching := pc.stop == nil || pc.stop()
	pc.stop = nil
	if complete && watching && !pc.closeAfter && pc.br.Buffered() == 0 {
		pc.t.put(pc)
		return
	}
	pc.nc.Close()
}

// close ends a failed request: the connection is not reused.
func (pc *h1Conn) close() {
	if pc.stop != nil {
		pc.stop()
		pc.stop = nil
	}
	pc.nc.Close()
}

// alive peeks at the socket without blocking: an idle connection has nothing to
// read, so end of file (the server closed it) or data (something unexpected) means
// it is not to be reused.
func (pc *h1Conn) alive() bool {
	if pc.raw == nil {
		return true
	}
	if pc.peek == nil {
		pc.peek = func(fd uintptr) bool {
			_, _, pc.peekErr = unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pc.peekBuf[0])), 1,
				unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
			return true
		}
	}
	if err := pc.raw.Read(pc.peek); err != nil {
		return false
	}
	return pc.peekErr == unix.EAGAIN
}

// h1Body is a response body read from an h1Conn; at its end the connection is
// released.
type h1Body struct {
	pc   *h1Conn
	rc   io.ReadCloser
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.done = true
		b.pc.release(err == io.EOF)
	}
	return n, err
}

// Close before the end of the body closes the connection (it is not drained: the
// rest may be long or endless).
func (b *h1Body) Close() error {
	if !b.done {
		b.done = true
		b.pc.release(false)
	}
	return nil
}

// aLongTimeAgo is a deadline in the past: it unblocks a connection's reads and writes.
var aLongTimeAgo = time.Unix(1, 0)

// rawConn returns the TCP socket beneath c (TLS and counting wrappers), or nil.
func rawConn(c net.Conn) syscall.RawConn {
	for {
		switch cc := c.(type) {
		case *countedConn:
			c = cc.Conn
		case *tls.Conn:
			c = cc.NetConn()
		case syscall.Conn:
			raw, err := cc.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		default:
			return nil
		}
	}
}

// isIdempotent reports whether a request may be sent twice, as net/http decides.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// appendRequest appends req in HTTP/1.1 wire form, in origin form, with its body
// (takes: a known length of at most maxInlineBody): what net/http's Request.Write
// sends for a proxied request, minus the User-Agent it would add.
func appendRequest(b []byte, req *http.Request) ([]byte, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return b, fmt.Errorf("invalid Host header %q", host)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	b = append(b, method...)
	b = append(b, ' ')
	if p := req.URL.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if req.URL.ForceQuery || req.URL.RawQuery != "" {
		b = append(b, '?')
		b = append(b, req.URL.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		case "User-Agent":
			if len(vs) == 0 || vs[0] == "" {
				continue // the reverse proxy's way of sending none
			}
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return b, fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return b, fmt.Errorf("invalid header field value for %q", k)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	n := req.ContentLength
	if n > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, n, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if n == 0 {
		return b, nil
	}
	start := len(b)
	b = append(b, make([]byte, n)...)
	got, err := io.ReadFull(req.Body, b[start:])
	if err != nil {
		return b, fmt.Errorf("reading the request body: %d of its %d bytes: %w", got, n, err)
	}
	return b, nil
}

// writeBufs recycles the buffers requests are written into.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getWriteBuf() *[]byte { return writeBufs.Get().(*[]byte) }

func putWriteBuf(b *[]byte) {
	if cap(*b) <= maxInlineBody+16<<10 {
		*b = (*b)[:0]
		writeBufs.Put(b)
	}
}

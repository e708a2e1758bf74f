package h1server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
	// maxDrain is the most of an unread request body read and discarded after the
	// handler so that the connection can serve the next request; beyond it the
	// connection is closed.
	maxDrain = 256 << 10
	// watchDelay is how long a request runs before the connection is watched for the
	// client going away (see watch.go).
	watchDelay = 100 * time.Millisecond
)

// aLongTimeAgo is a deadline in the past: it unblocks a connection's reads.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one served connection. Its fields are the serving goroutine's, but for
// idle (read by Drain) and the watch (watch.go).
type conn struct {
	srv        *Server
	nc         net.Conn
	br         *bufio.Reader
	bw         *bufio.Writer
	remoteAddr string
	tls        *tls.ConnectionState
	ctx        context.Context // cancelled when the connection ends
	// idle: the connection waits for a next request (Drain closes it).
	idle atomic.Bool
	// pending holds a response body, up to writeBufSize, until the handler returns
	// or flushes, so that its length can be sent as Content-Length.
	pending []byte
	keys    []string // header names being sorted
	// header is the response header map, cleared and used again by each request:
	// the handler does not keep it once it has returned (the response is written
	// from it after that).
	header http.Header

	watch watch
}

// serve reads requests and answers them until the connection ends.
func (c *conn) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.nc.LocalAddr())
	c.tls = tlsState(c.nc)
	c.bw = bufio.NewWriterSize(c.nc, writeBufSize)
	c.watch.init(c)
	defer c.watch.close()
	end := abort
	defer func() {
		switch end {
		case closeAfter:
			c.lingeringClose()
		case abort:
			c.nc.Close()
		}
	}()
	for first := true; ; first = false {
		req, err := c.readRequest(first)
		if err != nil {
			end = abort
			if c.refuse(err) {
				end = closeAfter
			}
			return
		}
		if end = c.serveRequest(req); end != next {
			return
		}
	}
}

// outcome is what becomes of a connection after a request.
type outcome int

const (
	next       outcome = iota // serve the next request
	closeAfter                // close, after the client has read the answer
	abort                     // close at once
	hijacked                  // the handler owns the connection
)

// lingerTimeout bounds the wait for a client to read the last answer and close
// its side, before the connection is closed anyway.
const lingerTimeout = 500 * time.Millisecond

// lingeringClose closes the connection after an answer without destroying it:
// closing a socket with unread input sends a reset, which may reach the client
// before it has read the answer. So the sending side closes first, and what the
// client still sends is read and discarded until it closes too, for at most
// lingerTimeout.
func (c *conn) lingeringClose() {
	defer c.nc.Close()
	var cw interface{ CloseWrite() error }
	raw := c.nc
	for nc := c.nc; nc != nil; {
		if w, ok := nc.(interface{ CloseWrite() error }); ok && cw == nil {
			cw = w
		}
		raw = nc
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	if cw == nil || cw.CloseWrite() != nil {
		return
	}
	_ = raw.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, raw)
}

// errBadRequest is a request net/http would refuse with 400 (after the guard).
type errBadRequest string

func (e errBadRequest) Error() string { return string(e) }

// readRequest waits for the next request (at most IdleTimeout, HeaderTimeout for
// the first) and reads its head (HeaderTimeout from its first byte).
func (c *conn) readRequest(first bool) (*http.Request, error) {
	if c.br.Buffered() == 0 {
		wait := c.srv.cfg.IdleTimeout
		if first {
			wait = c.srv.cfg.HeaderTimeout
		}
		// Between requests the connection is idle: Drain and Shutdown close it. A
		// new connection is not: its first request may be on its way.
		c.idle.Store(!first)
		if !first && c.srv.draining.Load() {
			return nil, net.ErrClosed
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(wait))
		_, err := c.br.Peek(1)
		c.idle.Store(false)
		if err != nil {
			return nil, err
		}
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.HeaderTimeout))
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, err
	}
	// http.ReadRequest takes the Host header out into req.Host; the guard refuses
	// a second one.
	switch {
	case req.Host == "" && req.ProtoAtLeast(1, 1):
		return nil, errBadRequest("missing required Host header")
	case !httpguts.ValidHostHeader(req.Host):
		return nil, errBadRequest("malformed Host header")
	}
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tls
	return req, nil
}

// refuse answers a request that could not be read with 400, unless the connection
// ended or timed out; it reports whether it answered.
func (c *conn) refuse(err error) bool {
	var bad errBadRequest
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		return false
	case errors.As(err, &bad):
	default:
		bad = "malformed request"
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = io.WriteString(c.nc, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: "+string(bad))
	return err == nil
}

// serveRequest calls the handler and finishes the response.
func (c *conn) serveRequest(req *http.Request) outcome {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	if req.Trailer == nil && len(req.TransferEncoding) > 0 {
		// The body's reader sets the trailers on the request it was read with:
		// a map shared with the copy WithContext makes.
		req.Trailer = http.Header{}
	}
	req = req.WithContext(ctx)
	if c.header == nil {
		c.header = http.Header{}
	} else {
		clear(c.header)
	}
	w := &response{c: c, req: req, header: c.header, contentLength: -1}
	w.body = reqBody{r: req.Body, w: w, cancel: cancel}
	w.closeAfter = req.Close || c.srv.draining.Load()
	if e, ok := req.Header["Expect"]; ok && req.ProtoAtLeast(1, 1) {
		if len(e) != 1 || !strings.EqualFold(e[0], "100-continue") {
			w.closeAfter = true
			w.header.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusExpectationFailed)
			w.finish()
			return closeAfter
		}
		w.body.expectContinue = req.ContentLength != 0
	}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &w.body
	} else {
		w.body.eof = true
	}
	c.watch.start(cancel, w.body.eof)
	ok := c.call(w, req)
	c.watch.stop()
	switch {
	case !ok:
		return abort
	case w.hijacked:
		return hijacked
	}
	w.finish()
	if w.closeAfter {
		return closeAfter
	}
	return next
}

// call runs the handler; false when it panicked (the connection is closed).
func (c *conn) call(w *response, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler {
				c.srv.cfg.Logger.Error("panic serving request", "remote", c.remoteAddr, "panic", p, "stack", string(debug.Stack()))
			}
		}
	}()
	c.srv.cfg.Handler.ServeHTTP(w, req)
	return true
}

// reqBody is the request body the handler reads. After the handler returns it is
// closed: a late reader (a transport still sending it) gets an error, not the next
// request's bytes.
type reqBody struct {
	mu             sync.Mutex
	r              io.ReadCloser
	w              *response
	cancel         context.CancelFunc // the request's
	failed         bool
	eof            bool
	closed         bool
	expectContinue bool // a 100 Continue is owed before the first read
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.expectContinue {
		b.expectContinue = false
		b.w.sendContinue()
	}
	n, err := b.r.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.w.c.watch.bodyDone()
	case err != nil:
		// The connection failed under the body (cut, stalled past the guard's
		// deadline, malformed framing): the client is as good as gone.
		b.failed = true
		b.cancel()
	}
	return n, err
}

// Close is a no-op for the handler: the server closes the body after it.
func (b *reqBody) Close() error { return nil }

// finish closes the body after the handler: unless the connection closes anyway
// (drain false), it reads and discards what is left, up to maxDrain, so that the
// connection can go on; false when it cannot.
func (b *reqBody) finish(drain bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.eof {
		return true
	}
	if b.failed {
		return false
	}
	if b.expectContinue || !drain {
		return false // the client waits for a 100 Continue it will not get
	}
	n, err := io.CopyN(io.Discard, b.r, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

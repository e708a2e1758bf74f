package h1server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/serverlimits"
)

// Config configures a Server.
type Config struct {
	// Handler answers the requests. The caller wraps it in serverlimits' Handler
	// when the connections are guarded.
	Handler http.Handler
	// HeaderTimeout bounds the time from a request's first byte to the end of its
	// head; IdleTimeout the wait for the next request on a kept-alive connection.
	HeaderTimeout time.Duration
	IdleTimeout   time.Duration
	// Logger receives handler panics; nil discards them.
	Logger *slog.Logger
}

// Server serves HTTP/1.x connections, one goroutine per connection (the caller's,
// in ServeConn).
type Server struct {
	cfg      Config
	draining atomic.Bool

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, conns: map[*conn]struct{}{}}
}

// ServeConn serves the HTTP/1.x requests of nc on the calling goroutine until the
// connection closes, is hijacked (then the handler that hijacked it owns it), or the
// server shuts it down. A connection that starts with the HTTP/2 preface is not
// served: ServeConn returns it, with the bytes it read still to be read, for an
// HTTP/2 server; otherwise it returns nil.
func (s *Server) ServeConn(nc net.Conn) (h2c net.Conn) {
	c := &conn{srv: s, nc: nc, br: bufio.NewReaderSize(nc, readBufSize), remoteAddr: nc.RemoteAddr().String()}
	if !s.track(c) {
		nc.Close()
		return nil
	}
	defer s.untrack(c)
	isH2, err := isH2C(c)
	switch {
	case err != nil:
		nc.Close() // silent past HeaderTimeout, or gone
	case isH2:
		return &bufferedConn{Conn: nc, br: c.br}
	default:
		c.serve()
	}
	return nil
}

// isH2C reads the first bytes of c until they are, or cannot be, the HTTP/2
// preface. An error means the connection ended, or sent nothing for HeaderTimeout.
func isH2C(c *conn) (bool, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.HeaderTimeout))
	preface := serverlimits.H2Preface
	for n := 1; ; n = min(max(c.br.Buffered(), n+1), len(preface)) {
		b, err := c.br.Peek(n)
		if !bytes.HasPrefix(preface, b) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if n == len(preface) {
			_ = c.nc.SetReadDeadline(time.Time{})
			return true, nil
		}
	}
}

// Drain makes every response from now on close its connection ("Connection:
// close"), and closes the connections waiting for a request.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.closeIdle()
}

// Shutdown stops serving new connections, closes the idle ones, lets the requests
// in flight finish until ctx ends, then closes every connection. It returns once
// no connection is served, or ctx's error when it had to close some.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Drain()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		if s.open() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *Server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.nc.Close()
		}
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// bufferedConn is a connection whose first bytes wait in br.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.br.Buffered() > 0 {
		return c.br.Read(p)
	}
	return c.Conn.Read(p)
}

// NetConn returns the connection beneath (as tls.Conn.NetConn does), so that the
// TLS state of a guarded connection stays reachable.
func (c *bufferedConn) NetConn() net.Conn { return c.Conn }

// tlsState returns the TLS state of nc or of a connection it wraps (NetConn), nil
// for plaintext.
func tlsState(nc net.Conn) *tls.ConnectionState {
	for nc != nil {
		switch c := nc.(type) {
		case *tls.Conn:
			st := c.ConnectionState()
			return &st
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
	return nil
}

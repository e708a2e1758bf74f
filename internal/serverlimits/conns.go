package serverlimits

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ConnCounter counts the open connections of one listener against a limit.
type ConnCounter struct {
	max     int64
	open    atomic.Int64
	refused atomic.Int64
}

// NewConnCounter returns a counter that admits up to max connections.
func NewConnCounter(max int) *ConnCounter {
	return &ConnCounter{max: int64(max)}
}

// Admit counts a new connection and reports whether it is within the limit; a
// connection admitted must be released once, one refused must not.
func (c *ConnCounter) Admit() bool {
	if c.open.Add(1) > c.max {
		c.open.Add(-1)
		c.refused.Add(1)
		return false
	}
	return true
}

// Release uncounts a closed connection.
func (c *ConnCounter) Release() { c.open.Add(-1) }

// Open returns the connections counted now.
func (c *ConnCounter) Open() int64 { return c.open.Load() }

// Refused returns how many connections were refused for the limit.
func (c *ConnCounter) Refused() int64 { return c.refused.Load() }

// countedConn releases its admission once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	counter *ConnCounter
}

func (c *countedConn) Close() error {
	c.once.Do(c.counter.Release)
	return c.Conn.Close()
}

// NetConn returns the wrapped connection.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// listener admits at most MaxConnections open connections and guards each.
type listener struct {
	net.Listener
	lim     Limits
	counter *ConnCounter
	tls     *tls.Config
	raw     bool // no guard
}

// Listener wraps ln for an http.Server made by Server: a connection beyond
// MaxConnections is closed as soon as it is accepted, and every one is read through
// Guard.
func (l Limits) Listener(ln net.Listener) net.Listener {
	l = l.WithDefaults()
	return &listener{Listener: ln, lim: l, counter: NewConnCounter(l.MaxConnections)}
}

// TLSListener is Listener for a server of HTTPS over HTTP/1.1: it terminates TLS
// with cfg (its handshake bounded by HandshakeTimeout) beneath the guard. The
// server is then served with Serve, not ServeTLS.
func (l Limits) TLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	l = l.WithDefaults()
	cfg = cfg.Clone()
	if !slices.Contains(cfg.NextProtos, "http/1.1") {
		cfg.NextProtos = []string{"http/1.1"}
	}
	return &listener{Listener: ln, lim: l, counter: NewConnCounter(l.MaxConnections), tls: cfg}
}

// Counter returns the listener's connection counter, for tests and metrics.
func Counter(ln net.Listener) *ConnCounter {
	if l, ok := ln.(*listener); ok {
		return l.counter
	}
	return nil
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.counter.Admit() {
			c.Close()
			continue
		}
		var conn net.Conn = &countedConn{Conn: c, counter: l.counter}
		if l.raw {
			return conn, nil
		}
		if l.tls != nil {
			conn = &handshakingConn{Conn: tls.Server(conn, l.tls), timeout: l.lim.HandshakeTimeout}
		}
		return l.lim.Guard(conn), nil
	}
}

// handshakingConn completes its TLS handshake within timeout at the first read or
// write (the HTTP server reads first).
type handshakingConn struct {
	net.Conn // *tls.Conn
	timeout  time.Duration
	once     sync.Once
	err      error
}

var errHandshake = errors.New("TLS handshake failed")

func (c *handshakingConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		tc := c.Conn.(*tls.Conn)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.err = errors.Join(errHandshake, err)
			tc.Close()
		}
	})
	return c.err
}

func (c *handshakingConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *handshakingConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// ConnectionState is the TLS connection's.
func (c *handshakingConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(*tls.Conn).ConnectionState()
}

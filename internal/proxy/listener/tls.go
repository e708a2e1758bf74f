package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// Timeouts of the first bytes of a connection.
const (
	// InspectTimeout bounds the wait for the bytes that tell TLS from plaintext (as
	// Envoy's listener_filters_timeout). A connection that sends nothing for that long
	// is taken as plaintext: a protocol where the server speaks first still works on
	// a PERMISSIVE listener.
	InspectTimeout = 15 * time.Second
)

// dispatch hands an accepted connection to the filter chain of the listener at its
// address in the current table. A listener with one plaintext chain takes it at
// once; otherwise a goroutine of the socket peeks at the first bytes, picks the chain
// (TLS ClientHello or not), terminates TLS if the chain says so, then serves it.
// release uncounts the connection (limits.go); it is called once the connection is
// closed.
func (m *Manager) dispatch(s *socket, conn net.Conn, release func()) {
	t := m.cfg.Tables.Current()
	l := t.ListenerAt(s.addr)
	if l == nil || len(l.Chains) == 0 {
		conn.Close()
		release()
		return
	}
	ctx := s.ctx
	if l.OriginalDst {
		dst, err := OriginalDst(conn)
		if err == nil && l.UseOriginalDst && dst.String() == conn.LocalAddr().String() {
			// With conntrack, a connection that was not redirected reports its own
			// local address.
			err = errors.New("not redirected")
		}
		if err != nil {
			// Not redirected: serving it would connect it back to this listener.
			m.cfg.Logger.Debug("closing connection without an original destination", "listener", l.Name, "error", err)
			conn.Close()
			release()
			return
		}
		if l.UseOriginalDst {
			if ts, tl := m.handoff(t, dst, l); ts != nil {
				s, l = ts, tl
			}
		}
		ctx = runtime.WithOriginalDst(s.ctx, dst)
	}
	m.dispatchTo(ctx, s, conn, l, release)
}

// dispatchTo serves conn with listener l of socket s: directly when there is nothing
// to inspect, else after inspection and any TLS handshake, on a goroutine of s.
func (m *Manager) dispatchTo(ctx context.Context, s *socket, conn net.Conn, l *runtime.Listener, release func()) {
	if len(l.Chains) == 0 {
		conn.Close()
		release()
		return
	}
	if !l.Inspect && !l.Detect && l.Chains[0].TLS == nil {
		m.serveChain(ctx, s, conn, l, l.Chains[0], release)
		return
	}
	if !s.track(conn) {
		conn.Close()
		release()
		return
	}
	s.done.Go(func() {
		c, chain := m.secure(s, conn, l)
		s.untrack(conn)
		if chain == nil {
			conn.Close()
			release()
			return
		}
		m.serveChain(ctx, s, c, l, chain, release)
	})
}

// serveChain serves conn with chain: HTTP connections go to the socket's HTTP server,
// TCP ones to the TCP proxy on a goroutine of the socket. HTTP/1.x connections are
// read through the framing guard (limits.go).
func (m *Manager) serveChain(ctx context.Context, s *socket, conn net.Conn, l *runtime.Listener, chain *runtime.FilterChain, release func()) {
	switch {
	case chain.Routes != nil:
		m.serveHTTP(s, conn, release)
	case chain.TCP != nil:
		if !s.track(conn) {
			conn.Close()
			release()
			return
		}
		if chain.TCP != l.TCP {
			cl := *l
			cl.TCP, cl.StatPrefix = chain.TCP, chain.StatPrefix
			l = &cl
		}
		s.done.Go(func() {
			defer release()
			defer s.untrack(conn)
			m.cfg.TCP.Serve(ctx, conn, l)
		})
	default:
		conn.Close()
		release()
	}
}

// secure picks the chain of a connection and completes its TLS handshake when the
// chain terminates TLS. It returns the connection to serve (the first bytes still to
// be read), or a nil chain when the connection must be closed.
func (m *Manager) secure(s *socket, conn net.Conn, l *runtime.Listener) (net.Conn, *runtime.FilterChain) {
	var c net.Conn = conn
	isTLS := false
	if l.Inspect {
		timeout := InspectTimeout
		if l.Detect {
			timeout = DetectTimeout // a silent client is plaintext TCP; do not wait twice
		}
		pc, err := peek(conn, timeout)
		if err != nil {
			m.cfg.Logger.Debug("inspecting connection", "listener", l.Name, "remote", conn.RemoteAddr(), "error", err)
			return nil, nil
		}
		c, isTLS = pc, pc.isTLS()
	}
	chain := l.Chain(isTLS)
	if chain == nil {
		m.cfg.Logger.Debug("no filter chain for connection; closing", "listener", l.Name, "remote", conn.RemoteAddr(), "tls", isTLS)
		return nil, nil
	}
	if chain.TLS == nil {
		if l.Detect {
			return m.detectChain(c, l, isTLS)
		}
		return c, chain
	}
	if chain.TLS.Config == nil {
		m.cfg.Logger.Warn("filter chain has no TLS configuration; closing", "listener", l.Name, "chain", chain.Name)
		return nil, nil
	}
	tc := tls.Server(c, chain.TLS.Config)
	ctx, cancel := context.WithTimeout(s.ctx, m.limits().HandshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	if m.cfg.Stats != nil {
		ctr := m.cfg.Stats.Listener(l.Name)
		if err != nil {
			ctr.SSLErrors.Add(1)
		} else {
			ctr.SSLHandshakes.Add(1)
		}
	}
	if err != nil {
		m.cfg.Logger.Debug("TLS handshake failed", "listener", l.Name, "chain", chain.Name, "remote", conn.RemoteAddr(), "error", err)
		return nil, nil
	}
	if hasApplicationProtocols(l) {
		// Over TLS the application protocol is the negotiated ALPN (Envoy's
		// tls_inspector semantics); chains of one transport share the TLS settings.
		return tc, l.ChainFor(true, tc.ConnectionState().NegotiatedProtocol)
	}
	return tc, chain
}

// peekedConn is a connection whose first bytes were read to inspect them; Read
// returns them first.
type peekedConn struct {
	net.Conn
	head []byte
}

// peek reads the first two bytes of conn (fewer if it ends or stays silent for
// timeout).
func peek(conn net.Conn, timeout time.Duration) (*peekedConn, error) {
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 8)
	for len(buf) < 2 {
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // silent client: plaintext
			}
			if len(buf) == 0 {
				return nil, err
			}
			break
		}
	}
	// A connection that cannot clear its deadline is already gone; its next read says so.
	_ = conn.SetReadDeadline(time.Time{})
	return &peekedConn{Conn: conn, head: buf}, nil
}

// isTLS reports whether the first bytes are a TLS handshake record (type 22) of
// version 3.x, as a ClientHello starts: the TLS inspector's "tls".
func (c *peekedConn) isTLS() bool {
	return len(c.head) >= 2 && c.head[0] == 22 && c.head[1] == 3
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection, for the TCP proxy.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection cannot half-close")
}

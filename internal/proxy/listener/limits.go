package listener

import (
	"crypto/tls"
	"net"

	"trellis.dev/trellis/internal/serverlimits"
)

// Limits of the sidecar's listeners (docs/limits.md): each socket's HTTP server takes
// its timeouts, header bounds and HTTP/2 settings from Config.Limits, every HTTP/1.x
// connection is read through serverlimits' framing guard, and each socket admits at
// most Limits.MaxConnections open connections: the accept loop closes one beyond at
// once (counted as the listener's downstream_cx_overflow) and keeps serving the
// others. A connection's admission is released when it closes: by the TCP proxy's
// goroutine, by the HTTP server's ConnState hook, or where dispatch drops it.

// limits returns the configured limits.
func (m *Manager) limits() serverlimits.Limits { return m.cfg.Limits.WithDefaults() }

// guard wraps an HTTP connection in the HTTP/1.x framing guard, unless it speaks
// HTTP/2 over TLS (net/http must see the *tls.Conn to serve h2; HTTP/2 has its own
// framing and bounds). The guard passes h2c with prior knowledge through.
func (m *Manager) guard(conn net.Conn) net.Conn {
	if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		return conn
	}
	return m.limits().Guard(conn)
}

// overflow counts a connection refused at s for the connection limit.
func (m *Manager) overflow(s *socket) {
	if m.cfg.Stats == nil {
		return
	}
	if l := m.cfg.Tables.Current().ListenerAt(s.addr); l != nil {
		m.cfg.Stats.Listener(l.Name).CxOverflow.Add(1)
	}
}

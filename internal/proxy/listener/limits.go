package listener

import "trellis.dev/trellis/internal/serverlimits"

// Limits of the sidecar's listeners (docs/limits.md): each socket's HTTP servers take
// their timeouts, header bounds and HTTP/2 settings from Config.Limits, every HTTP/1.x
// connection is read through serverlimits' framing guard (serveHTTP) and its
// requests pass serverlimits.Handler, and each socket admits at most
// Limits.MaxConnections open connections: the accept loop closes one beyond at once
// (counted as the listener's downstream_cx_overflow) and keeps serving the others. A
// connection's admission is released when it closes: by the TCP proxy's goroutine,
// the HTTP/1.x connection's goroutine, the HTTP/2 server's ConnState hook, or where
// dispatch drops it.

// limits returns the configured limits.
func (m *Manager) limits() serverlimits.Limits { return m.cfg.Limits.WithDefaults() }

// overflow counts a connection refused at s for the connection limit.
func (m *Manager) overflow(s *socket) {
	if m.cfg.Stats == nil {
		return
	}
	if l := m.cfg.Tables.Current().ListenerAt(s.addr); l != nil {
		m.cfg.Stats.Listener(l.Name).CxOverflow.Add(1)
	}
}

package listener

import (
	"net"
	"net/netip"
	"strconv"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// handoff finds the listener that serves a connection a capture listener (from,
// use_original_dst) accepted: the one whose address is the connection's original
// destination dst, else the one at 0.0.0.0 and dst's port (Envoy's semantics). It
// returns nil when there is none, and from keeps the connection.
func (m *Manager) handoff(t *runtime.Table, dst netip.AddrPort, from *runtime.Listener) (*socket, *runtime.Listener) {
	for _, addr := range []string{dst.String(), net.JoinHostPort("0.0.0.0", strconv.Itoa(int(dst.Port())))} {
		l := t.ListenerAt(addr)
		if l == nil || l == from || l.UseOriginalDst || len(l.Chains) == 0 {
			continue
		}
		m.mu.Lock()
		s := m.sockets[addr]
		m.mu.Unlock()
		if s != nil && s.serving {
			return s, l
		}
	}
	return nil, nil
}

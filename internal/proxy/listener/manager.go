package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
	"trellis.dev/trellis/internal/serverlimits"
)

// Tables gives the runtime table in effect.
type Tables interface {
	Current() *runtime.Table
}

// HTTPHandlers gives the handler of the HTTP listener bound at an address.
type HTTPHandlers interface {
	Handler(addr string) http.Handler
}

// TCPServer proxies one accepted connection of a TCP proxy listener until it ends.
type TCPServer interface {
	Serve(ctx context.Context, conn net.Conn, l *runtime.Listener)
}

// Config configures a Manager.
type Config struct {
	Tables Tables
	HTTP   HTTPHandlers
	TCP    TCPServer
	Logger *slog.Logger
	// Stats, if set, counts TLS handshakes per listener.
	Stats *stats.Stats
	// DrainTimeout bounds how long a removed listener, or every listener at
	// Shutdown, lets its requests and connections finish.
	DrainTimeout time.Duration
	// Limits bound what clients can make the listeners do (limits.go); zero fields
	// take serverlimits' defaults.
	Limits serverlimits.Limits
}

// Manager owns the sidecar's listening sockets, keyed by address. Prepare binds the
// addresses of an accepted LDS update (so that a bind failure can be NACKed); Activate
// starts serving the addresses of a table just published and drains those it no longer
// has. Every method holds mu; the goroutines it starts are tracked by wg and stopped
// by Shutdown.
type Manager struct {
	cfg Config

	mu       sync.Mutex
	sockets  map[string]*socket
	closed   bool
	draining bool // Drain was called: keep-alives are off on every socket
	wg       sync.WaitGroup
}

// New returns a Manager with no sockets.
func New(cfg Config) *Manager {
	return &Manager{cfg: cfg, sockets: map[string]*socket{}}
}

// Prepare makes the bound sockets match want (address -> listener name): it binds the
// addresses not yet bound and closes the bound ones that are neither in want nor
// serving. On a bind failure it closes what it just bound and returns an error naming
// the listener and the address.
func (m *Manager) Prepare(want map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("listeners are shut down")
	}
	var bound []*socket
	for addr, name := range want {
		if m.sockets[addr] != nil {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, s := range bound {
				s.ln.Close()
				delete(m.sockets, s.addr)
			}
			return &runtime.Error{Type: runtime.ListenerType, Name: name, Field: "address",
				Msg: fmt.Sprintf("binding %s: %v", addr, err)}
		}
		s := &socket{addr: addr, ln: ln}
		m.sockets[addr] = s
		bound = append(bound, s)
	}
	for addr, s := range m.sockets {
		if _, ok := want[addr]; !ok && !s.serving {
			s.ln.Close()
			delete(m.sockets, addr)
		}
	}
	return nil
}

// Activate serves every listener of t (binding any address Prepare did not) and drains
// the serving sockets whose address t does not have.
func (m *Manager) Activate(t *runtime.Table) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	for _, l := range t.Listeners {
		s := m.sockets[l.Address]
		if s != nil && s.serving && (s.ln == nil) != l.Virtual {
			// The listener became virtual or bound: replace the socket.
			delete(m.sockets, l.Address)
			m.wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), m.cfg.DrainTimeout)
				defer cancel()
				s.drain(ctx)
			})
			s = nil
		}
		if s == nil && l.Virtual {
			s = &socket{addr: l.Address}
			m.sockets[l.Address] = s
		}
		if s == nil {
			ln, err := net.Listen("tcp", l.Address)
			if err != nil {
				m.cfg.Logger.Error("binding listener", "listener", l.Name, "address", l.Address, "error", err)
				continue
			}
			s = &socket{addr: l.Address, ln: ln}
			m.sockets[l.Address] = s
		}
		if !s.serving {
			m.serve(s)
			m.cfg.Logger.Info("listener serving", "listener", l.Name, "address", l.Address)
		}
	}
	for addr, s := range m.sockets {
		if s.serving && t.ListenerAt(addr) == nil {
			delete(m.sockets, addr)
			m.cfg.Logger.Info("listener removed; draining", "address", addr)
			m.wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), m.cfg.DrainTimeout)
				defer cancel()
				s.drain(ctx)
			})
		}
	}
}

// Drain puts the sidecar's listeners in the draining state, which lasts until
// Shutdown: they keep accepting connections and serving requests, but HTTP
// keep-alives end. An HTTP/1.1 response says "Connection: close" and its connection
// closes after it, idle HTTP/1.1 connections close at once, and an HTTP/2
// connection gets a GOAWAY as soon as it has no stream open; so clients open new
// connections, which go to other endpoints once the control plane has told them this
// one is leaving, while whatever is in flight finishes. Sockets served later (by
// Activate) drain too. TCP proxy connections are left alone until Shutdown.
func (m *Manager) Drain() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draining = true
	for _, s := range m.sockets {
		if s.serving {
			s.http.SetKeepAlivesEnabled(false)
			s.h1.Drain()
		}
	}
}

// Shutdown stops accepting on every socket, lets requests and connections in flight
// finish until ctx ends, then closes what is left and waits for every goroutine.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	sockets := m.sockets
	m.sockets = map[string]*socket{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range sockets {
		if !s.serving {
			s.ln.Close()
			continue
		}
		wg.Go(func() { s.drain(ctx) })
	}
	wg.Wait()
	m.wg.Wait()
}

// Addresses returns the addresses of the serving sockets.
func (m *Manager) Addresses() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for addr, s := range m.sockets {
		if s.serving {
			out = append(out, addr)
		}
	}
	return out
}

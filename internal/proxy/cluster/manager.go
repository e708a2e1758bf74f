package cluster

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"sync"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// Config configures a Manager.
type Config struct {
	Logger *slog.Logger
	// Resolver resolves the names of STRICT_DNS clusters; net.DefaultResolver if nil.
	Resolver Resolver
}

// Manager keeps the State of every cluster by name across configuration changes.
// Sync is called by the configuration path, one at a time, before a table is
// published; Close stops every state's goroutines.
type Manager struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	states map[string]*State
}

// NewManager returns a Manager with no clusters.
func NewManager(cfg Config) *Manager {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, ctx: ctx, cancel: cancel, states: map[string]*State{}}
}

// Sync brings the states in line with a new table's clusters: it updates the state of
// each (creating those new), stops the states of clusters no longer present, and
// returns the states by cluster name.
func (m *Manager) Sync(clusters map[string]*runtime.Cluster) map[string]*State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]*State, len(clusters))
	for name, c := range clusters {
		s := m.states[name]
		if s == nil {
			s = newState(name, m.cfg.Logger, m.cfg.Resolver)
		}
		s.update(m.ctx, c)
		out[name] = s
	}
	for name, s := range m.states {
		if out[name] == nil {
			s.close()
		}
	}
	m.states = out
	return out
}

// State returns the state of a cluster, or nil.
func (m *Manager) State(name string) *State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states[name]
}

// States returns the state of every cluster, by name.
func (m *Manager) States() map[string]*State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.states)
}

// Close stops every state's goroutines and waits for them.
func (m *Manager) Close() {
	m.cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.states {
		s.close()
	}
}

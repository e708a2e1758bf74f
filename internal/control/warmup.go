package control

import (
	"time"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/registry"
)

// DefaultWarmup bounds how long a starting control plane holds its first push while
// the sidecars of the Workloads in its files register.
const DefaultWarmup = 5 * time.Second

// warmup holds pushes while a starting control plane does not yet know every
// Workload declared in its files. Endpoints come from registrations, so a control
// plane that restarts while traffic flows would otherwise push, to the first sidecar
// that reconnects, services without their endpoints (503s) until the others reconnect.
// Sidecars keep serving their last configuration meanwhile. It ends when every
// declared Workload has registered, or at the deadline. Used by the translator's
// goroutine only.
type warmup struct {
	until time.Time
	done  bool
}

// holding reports whether pushes are still held.
func (w *warmup) holding(declared []config.Workload, instances []registry.Instance) bool {
	if w.done {
		return false
	}
	if !time.Now().Before(w.until) {
		w.done = true
		return false
	}
	registered := make(map[string]bool, len(instances))
	for _, inst := range instances {
		registered[inst.NodeID] = true
	}
	for _, wl := range declared {
		if !registered[wl.Name+"."+wl.Namespace] {
			return true
		}
	}
	w.done = true
	return false
}

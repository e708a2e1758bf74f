package registry

import (
	"reflect"
	"slices"
	"strings"
	"sync"

	"trellis.dev/trellis/internal/bootstrap"
)

// Protocol is the xDS protocol variant of a stream. The State of the World and Delta
// servers number their streams independently, so a stream is identified by both.
type Protocol string

// The two xDS protocol variants.
const (
	SotW  Protocol = "sotw"
	Delta Protocol = "delta"
)

// Stream identifies one xDS stream of the server.
type Stream struct {
	Protocol Protocol
	ID       int64
}

// Instance is one registered workload instance: a connected sidecar and what it said
// about its workload.
type Instance struct {
	// NodeID is the sidecar's xDS node ID (<workload>.<namespace>).
	NodeID string
	// Metadata is the node metadata of the registering request.
	Metadata bootstrap.Metadata
	// Starting is set from registration until the sidecar first acknowledges its
	// listeners (MarkServing): until then its inbound listeners may not be bound yet,
	// so it gets its own configuration but is no endpoint of its services.
	Starting bool
}

type entry struct {
	inst Instance
	seq  uint64 // registration order; the newest stream of a node wins
}

// Registry holds the instances of the open xDS streams. The zero value is not usable;
// call New.
type Registry struct {
	mu      sync.Mutex
	streams map[Stream]entry
	// byNode indexes streams by node ID, so that a registration costs the node's
	// streams, not every stream.
	byNode map[string]map[Stream]struct{}
	seq    uint64
	subs   map[chan struct{}]struct{}
}

// New returns an empty Registry.
func New() *Registry {
	return &Registry{
		streams: make(map[Stream]entry),
		byNode:  make(map[string]map[Stream]struct{}),
		subs:    make(map[chan struct{}]struct{}),
	}
}

// Register records that stream carries the instance inst. It reports whether the
// stream was new; registering a known stream again updates its instance.
func (r *Registry) Register(stream Stream, inst Instance) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := r.viewLocked(inst.NodeID)
	old, known := r.streams[stream]
	seq := old.seq
	if !known {
		r.seq++
		seq = r.seq
	}
	if known && old.inst.NodeID != inst.NodeID {
		r.unindexLocked(stream, old.inst.NodeID)
	}
	r.streams[stream] = entry{inst: inst, seq: seq}
	if r.byNode[inst.NodeID] == nil {
		r.byNode[inst.NodeID] = make(map[Stream]struct{})
	}
	r.byNode[inst.NodeID][stream] = struct{}{}
	if after := r.viewLocked(inst.NodeID); !reflect.DeepEqual(before, after) {
		r.notifyLocked()
	}
	return !known
}

// MarkServing records that the sidecar of stream acknowledged its listeners, which
// it binds before it acknowledges them: from now on it is an endpoint. It reports
// whether the instance was starting.
func (r *Registry) MarkServing(stream Stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.streams[stream]
	if !ok || !e.inst.Starting {
		return false
	}
	before := r.viewLocked(e.inst.NodeID)
	e.inst.Starting = false
	r.streams[stream] = e
	if after := r.viewLocked(e.inst.NodeID); !reflect.DeepEqual(before, after) {
		r.notifyLocked()
	}
	return true
}

// Deregister forgets a stream. The stream's node stays registered while another of
// its streams is open.
func (r *Registry) Deregister(stream Stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.streams[stream]
	if !ok {
		return
	}
	before := r.viewLocked(e.inst.NodeID)
	delete(r.streams, stream)
	r.unindexLocked(stream, e.inst.NodeID)
	if after := r.viewLocked(e.inst.NodeID); !reflect.DeepEqual(before, after) {
		r.notifyLocked()
	}
}

// Lookup returns the instance registered for a node, if any stream of it is open.
func (r *Registry) Lookup(nodeID string) (Instance, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.viewLocked(nodeID)
	if v == nil {
		return Instance{}, false
	}
	return *v, true
}

// Instances returns one instance per registered node, from its newest open stream,
// sorted by node ID. The caller owns the returned slice.
func (r *Registry) Instances() []Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	newest := make(map[string]entry)
	for _, e := range r.streams {
		if cur, ok := newest[e.inst.NodeID]; !ok || e.seq > cur.seq {
			newest[e.inst.NodeID] = e
		}
	}
	out := make([]Instance, 0, len(newest))
	for _, e := range newest {
		out = append(out, e.inst)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// Len returns the number of registered nodes.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byNode)
}

func (r *Registry) unindexLocked(stream Stream, nodeID string) {
	delete(r.byNode[nodeID], stream)
	if len(r.byNode[nodeID]) == 0 {
		delete(r.byNode, nodeID)
	}
}

// Subscribe returns a channel that receives a value after the set of instances
// changes; changes that arrive before the value is read coalesce into one. The
// returned func unsubscribes.
func (r *Registry) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

// viewLocked returns the instance of a node as Instances would report it, or nil.
func (r *Registry) viewLocked(nodeID string) *Instance {
	var best *entry
	for stream := range r.byNode[nodeID] {
		e := r.streams[stream]
		if best == nil || e.seq > best.seq {
			e := e
			best = &e
		}
	}
	if best == nil {
		return nil
	}
	return &best.inst
}

func (r *Registry) notifyLocked() {
	for ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

package xdsserver

import (
	"context"
	"maps"
	"slices"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// deltaCache answers the Delta streams of every node (sidecars and proxyless
// alike) from the snapshots Push sets, in place of go-control-plane's snapshot
// cache, whose Delta path did per node what the nodes of a scope could share:
//
//   - setting a snapshot compared every resource of every type with what each of the
//     node's streams holds, although most types are unchanged: here a watch keeps
//     the version of the typeSet it was last found up to date with, and a new
//     snapshot whose typeSet of that type has the same version (the same names and
//     resource versions) is not compared again;
//   - each response serialized its resources into new Any messages: here every
//     distinct resource has one discovery Resource, built once per push with its
//     version (wire.delta), which every response that carries it shares;
//   - the request that follows each response (its ACK) was compared in full with
//     the snapshot, and so was every stream at every change: here the cache
//     remembers, per stream and type, the typeSet it last sent while the
//     subscription has not changed, so that an ACK of the current version needs no
//     comparison, and a stream that holds exactly the previous typeSet is sent the
//     difference between the two, computed once for every such stream (diffs);
//   - a watch that found nothing to send still built the stream's next version map:
//     here nothing is allocated unless there is something to send.
//
// What a stream is sent is what go-control-plane's cache would send it: for a
// wildcard subscription, every resource of the type whose version differs from the
// one the stream holds, and the names it holds that the snapshot lacks as removed;
// for a subscription by names, the same restricted to the names. A stream's first
// wildcard request is answered even when there is nothing to send, so that the
// client completes its initialization. Resources are sent in name order; a snapshot's
// responses are sent in the order of go-control-plane's ADS mode (clusters,
// endpoints, listeners, routes, secrets).
//
// Concurrency: mu guards the node table, diffMu the differences; each node's own
// mutex guards its snapshot, watches and sent states, and is held while a response
// is handed to the stream's channel
// (which has room for a response of every type, and a stream has one watch per
// type), so that a watch is answered at most once.
type deltaCache struct {
	mu    sync.RWMutex
	nodes map[string]*deltaNode

	diffMu sync.Mutex
	// diffs are the differences between two typeSets, which every stream that held
	// the first and is sent the second shares (at most maxDiffs; then emptied).
	diffs map[diffKey]*deltaDiff
}

const maxDiffs = 1024

type deltaNode struct {
	mu      sync.Mutex
	snap    *nodeSnapshot // nil until a snapshot is set, and after it is cleared
	watches map[*deltaWatch]struct{}
	// gone is set when the node is dropped from the table: whoever locks it then
	// must look it up again.
	gone bool
	// sent is, per stream (its response channel) and type, what the last response
	// gave the stream, while the stream's subscription has not changed since.
	sent map[sentKey]sentState
}

// sentState is what a stream holds of a type after the last response it was sent.
type sentState struct {
	// set is the typeSet the response brought the stream up to date with.
	set *typeSet
	// exact is set when the stream holds exactly set's resources and subscribes to
	// no other name (a wildcard, or the names of set): what it lacks of another
	// typeSet is then their difference, the same for every such stream.
	exact bool
}

type sentKey struct {
	ch chan cachev3.DeltaResponse
	t  types.ResponseType
}

// maxSent bounds deltaNode.sent, which streams that ended leave behind: beyond it
// the table is emptied (the next requests of the node's streams are compared in
// full once).
const maxSent = 4 * int(types.UnknownType)

// deltaWatch is a stream's open request for one type.
type deltaWatch struct {
	req *cachev3.DeltaRequest
	sub cachev3.Subscription
	ch  chan cachev3.DeltaResponse
	t   types.ResponseType
	// upToDate is the version of the typeSet the stream was found to hold ("":
	// none yet).
	upToDate string
}

func newDeltaCache() *deltaCache {
	return &deltaCache{nodes: make(map[string]*deltaNode), diffs: make(map[diffKey]*deltaDiff)}
}

// lockNode returns the node's entry, created if need be, locked.
func (c *deltaCache) lockNode(id string) *deltaNode {
	for {
		c.mu.RLock()
		n, ok := c.nodes[id]
		c.mu.RUnlock()
		if !ok {
			c.mu.Lock()
			if n, ok = c.nodes[id]; !ok {
				n = &deltaNode{watches: make(map[*deltaWatch]struct{}), sent: make(map[sentKey]sentState)}
				c.nodes[id] = n
			}
			c.mu.Unlock()
		}
		n.mu.Lock()
		if !n.gone {
			return n
		}
		n.mu.Unlock()
	}
}

// CreateDeltaWatch answers req at once if the node's snapshot has something the
// stream lacks; otherwise it keeps the watch until a snapshot does. The request
// after a response (its ACK or NACK, which changes no subscription) needs no
// comparison when the type's version is still that of the response.
func (c *deltaCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	t := cachev3.GetResponseType(req.GetTypeUrl())
	w := &deltaWatch{req: req, sub: sub, ch: ch, t: t}
	n := c.lockNode(req.GetNode().GetId())
	defer n.mu.Unlock()
	k := sentKey{ch: ch, t: t}
	if req.GetResponseNonce() == "" || len(req.GetResourceNamesSubscribe()) > 0 ||
		len(req.GetResourceNamesUnsubscribe()) > 0 || len(req.GetInitialResourceVersions()) > 0 {
		delete(n.sent, k)
	} else if st, ok := n.sent[k]; ok && n.snap != nil && st.set.version == n.snap.typeSet(t).version {
		w.upToDate = st.set.version
	}
	if n.snap != nil && w.upToDate == "" && c.respond(n, w) {
		return nil, nil
	}
	n.watches[w] = struct{}{}
	return func() {
		n.mu.Lock()
		delete(n.watches, w)
		n.mu.Unlock()
	}, nil
}

// setSnapshot makes snap the node's snapshot and answers the watches it changes.
func (c *deltaCache) setSnapshot(id string, snap *nodeSnapshot) {
	n := c.lockNode(id)
	defer n.mu.Unlock()
	n.snap = snap
	if len(n.watches) == 0 {
		return
	}
	ordered := make([]*deltaWatch, 0, len(n.watches))
	for w := range n.watches {
		if w.upToDate == "" || w.upToDate != snap.typeSet(w.t).version {
			ordered = append(ordered, w)
		}
	}
	slices.SortFunc(ordered, func(a, b *deltaWatch) int { return int(a.t) - int(b.t) })
	for _, w := range ordered {
		if c.respond(n, w) {
			delete(n.watches, w)
		}
	}
}

// clearSnapshot forgets the node's snapshot; its streams' watches stay open, and a
// node without any is dropped.
func (c *deltaCache) clearSnapshot(id string) {
	c.mu.RLock()
	n, ok := c.nodes[id]
	c.mu.RUnlock()
	if !ok {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.snap = nil
	if len(n.watches) == 0 && !n.gone {
		n.gone = true
		c.mu.Lock()
		delete(c.nodes, id)
		c.mu.Unlock()
	}
}

// respond sends w what the stream lacks of the node's snapshot, and reports
// whether it sent a response. Called with n.mu held and n.snap set.
func (c *deltaCache) respond(n *deltaNode, w *deltaWatch) bool {
	set := n.snap.typeSet(w.t)
	k := sentKey{ch: w.ch, t: w.t}
	var resp *deltaResponse
	var exact bool
	if st, ok := n.sent[k]; ok && st.exact {
		resp, exact = c.fromSent(st.set, set, w)
	} else {
		resp, exact = set.deltaFor(w.req, w.sub)
	}
	if resp == nil {
		w.upToDate = set.version
		return false
	}
	if _, ok := n.sent[k]; !ok && len(n.sent) >= maxSent {
		clear(n.sent)
	}
	n.sent[k] = sentState{set: set, exact: exact}
	w.ch <- resp
	return true
}

type diffKey struct {
	from, to *typeSet
	wildcard bool
}

// deltaDiff is what a stream holding exactly one typeSet lacks of another.
type deltaDiff struct {
	send    []*discoveryv3.Resource
	removed []string
	// sameNames: both sets have the same names.
	sameNames bool
}

// fromSent is the response that brings a stream holding exactly from up to date
// with to (nil if there is nothing to send), and whether the stream then holds
// exactly to.
func (c *deltaCache) fromSent(from, to *typeSet, w *deltaWatch) (*deltaResponse, bool) {
	wildcard := w.sub.IsWildcard()
	d := c.diff(diffKey{from: from, to: to, wildcard: wildcard})
	if len(d.send) == 0 && len(d.removed) == 0 {
		return nil, true
	}
	var next map[string]string
	if wildcard || d.sameNames {
		next = maps.Clone(to.versions)
	} else {
		// The stream subscribes to from's names only.
		next = make(map[string]string, len(from.versions))
		for name := range from.versions {
			if v, ok := to.versions[name]; ok {
				next[name] = v
			}
		}
	}
	if next == nil {
		next = map[string]string{}
	}
	return &deltaResponse{req: w.req, version: to.version, resources: d.send, removed: d.removed, next: next},
		wildcard || d.sameNames
}

// diff returns the difference k names, computed once.
func (c *deltaCache) diff(k diffKey) *deltaDiff {
	c.diffMu.Lock()
	d, ok := c.diffs[k]
	c.diffMu.Unlock()
	if ok {
		return d
	}
	d = &deltaDiff{}
	for _, r := range k.to.delta {
		v, ok := k.from.versions[r.Name]
		// By name, the stream subscribes to from's names only.
		if (!ok && k.wildcard) || (ok && v != r.Version) {
			d.send = append(d.send, r)
		}
	}
	for name := range k.from.versions {
		if _, ok := k.to.versions[name]; !ok {
			d.removed = append(d.removed, name)
		}
	}
	slices.Sort(d.removed)
	d.sameNames = len(d.removed) == 0 && len(k.from.versions) == len(k.to.versions)
	c.diffMu.Lock()
	if len(c.diffs) >= maxDiffs {
		clear(c.diffs)
	}
	c.diffs[k] = d
	c.diffMu.Unlock()
	return d
}

// deltaFor is the response that brings a stream holding sub up to date with set,
// or nil if there is nothing to send; and whether the stream then holds exactly
// set (see sentState.exact).
func (set *typeSet) deltaFor(req *cachev3.DeltaRequest, sub cachev3.Subscription) (*deltaResponse, bool) {
	held := sub.ReturnedResources()
	var send []*discoveryv3.Resource
	var removed []string
	wildcard := sub.IsWildcard()
	exact := wildcard || len(sub.SubscribedResources()) == len(set.delta)
	if wildcard {
		for _, r := range set.delta {
			if v, ok := held[r.Name]; !ok || v != r.Version {
				send = append(send, r)
			}
		}
		for name := range held {
			if _, ok := set.versions[name]; !ok {
				removed = append(removed, name)
			}
		}
	} else {
		subscribed := sub.SubscribedResources()
		for _, r := range set.delta {
			if _, ok := subscribed[r.Name]; !ok {
				exact = false
				continue
			}
			if v, ok := held[r.Name]; !ok || v != r.Version {
				send = append(send, r)
			}
		}
		for name := range subscribed {
			if _, ok := set.versions[name]; ok {
				continue
			}
			if _, ok := held[name]; ok {
				removed = append(removed, name)
			}
		}
	}
	if len(send) == 0 && len(removed) == 0 && (!wildcard || req.GetResponseNonce() != "") {
		return nil, false
	}
	slices.Sort(removed)
	var next map[string]string
	if wildcard {
		next = maps.Clone(set.versions)
	} else {
		next = make(map[string]string, len(sub.SubscribedResources()))
		for name := range sub.SubscribedResources() {
			if v, ok := set.versions[name]; ok {
				next[name] = v
			}
		}
	}
	if next == nil {
		next = map[string]string{}
	}
	return &deltaResponse{req: req, version: set.version, resources: send, removed: removed, next: next}, exact
}

// deltaResponse is a Delta response whose resources are shared with every other
// response that carries them.
type deltaResponse struct {
	req       *cachev3.DeltaRequest
	version   string
	resources []*discoveryv3.Resource
	removed   []string
	next      map[string]string // the stream's versions once it has applied this
}

var _ cachev3.DeltaResponse = (*deltaResponse)(nil)

// GetDeltaDiscoveryResponse returns a new message each time (the server sets its
// nonce), whose resources are shared and must not be changed.
func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	return &discoveryv3.DeltaDiscoveryResponse{
		Resources:         r.resources,
		RemovedResources:  r.removed,
		TypeUrl:           r.req.GetTypeUrl(),
		SystemVersionInfo: r.version,
	}, nil
}

func (r *deltaResponse) GetDeltaRequest() *discoveryv3.DeltaDiscoveryRequest { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)                   { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string                          { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string                { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string             { return r.next }
func (r *deltaResponse) GetContext() context.Context                         { return context.Background() }

package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/registry"
)

// tapTarget is one sidecar to tap.
type tapTarget struct {
	node    string
	admin   string
	service string // FQDN of the service the sidecar's workload declares
}

// tapHub fans the sidecars' /tap streams in to the dashboard's tap clients. It
// reads the sidecars only while a client is connected (and for linger after the
// last one left), so that sidecars pay for the tap only while someone looks.
type tapHub struct {
	http    *http.Client
	log     *slog.Logger
	backlog int
	linger  time.Duration

	mu       sync.Mutex // guards everything below
	ring     []TapEvent
	next     int
	full     bool
	subs     map[chan TapEvent]struct{}
	lastSeen time.Time                // when the last client left
	readers  map[tapTarget]*tapReader // running sidecar streams
	open     map[string]bool          // node -> its stream is open
	wake     chan struct{}            // a client arrived
	dropped  uint64
}

type tapReader struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newTapHub(c *http.Client, log *slog.Logger, backlog int, linger time.Duration) *tapHub {
	return &tapHub{http: c, log: log, backlog: backlog, linger: linger, ring: make([]TapEvent, backlog),
		subs: map[chan TapEvent]struct{}{}, readers: map[tapTarget]*tapReader{}, open: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// subscribe adds a client: it gets the backlog (oldest first) and a channel of live
// events; cancel removes it.
func (h *tapHub) subscribe() ([]TapEvent, chan TapEvent, func()) {
	ch := make(chan TapEvent, 1024)
	h.mu.Lock()
	var backlog []TapEvent
	if h.full {
		backlog = append(backlog, h.ring[h.next:]...)
	}
	backlog = append(backlog, h.ring[:h.next]...)
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return backlog, ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		if len(h.subs) == 0 {
			h.lastSeen = time.Now()
		}
		h.mu.Unlock()
	}
}

func (h *tapHub) publish(ev TapEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = ev
	if h.next++; h.next == len(h.ring) {
		h.next, h.full = 0, true
	}
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			h.dropped++
		}
	}
}

// wanted reports whether the sidecars should be tapped now.
func (h *tapHub) wanted() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0 || !h.lastSeen.IsZero() && time.Since(h.lastSeen) < h.linger
}

// isOpen reports whether node's tap stream is open.
func (h *tapHub) isOpen(node string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open[node]
}

func tapTargets(instances []registry.Instance) []tapTarget {
	var out []tapTarget
	for _, in := range instances {
		md := in.Metadata
		if md.Admin == "" {
			continue
		}
		t := tapTarget{node: in.NodeID, admin: md.Admin}
		if md.Service != "" {
			ns := md.Namespace
			if ns == "" {
				ns = names.DefaultNamespace
			}
			t.service = names.ServiceFQDN(md.Service, ns)
		}
		out = append(out, t)
	}
	return out
}

// run keeps one reader per sidecar while tapping is wanted, until ctx ends. It
// owns the readers.
func (h *tapHub) run(ctx context.Context, sidecars Sidecars) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer h.sync(ctx, nil)
	for {
		var targets []tapTarget
		if h.wanted() {
			targets = tapTargets(sidecars.Instances())
		}
		h.sync(ctx, targets)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.wake:
		}
	}
}

// sync starts readers for new targets and stops the others.
func (h *tapHub) sync(ctx context.Context, targets []tapTarget) {
	want := map[tapTarget]bool{}
	for _, t := range targets {
		want[t] = true
	}
	h.mu.Lock()
	var stop []*tapReader
	for t, r := range h.readers {
		if !want[t] {
			stop = append(stop, r)
			delete(h.readers, t)
		}
	}
	for t := range want {
		if _, ok := h.readers[t]; !ok {
			rctx, cancel := context.WithCancel(ctx)
			r := &tapReader{cancel: cancel, done: make(chan struct{})}
			h.readers[t] = r
			go func() {
				defer close(r.done)
				h.read(rctx, t)
			}()
		}
	}
	h.mu.Unlock()
	for _, r := range stop {
		r.cancel()
		<-r.done
	}
}

// read streams one sidecar's tap into the hub, reconnecting after a second when the
// stream breaks, until ctx ends.
func (h *tapHub) read(ctx context.Context, t tapTarget) {
	for {
		err := h.stream(ctx, t)
		if ctx.Err() != nil {
			return
		}
		h.log.Debug("sidecar tap stream ended", "node", t.node, "admin", t.admin, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (h *tapHub) setOpen(node string, open bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if open {
		h.open[node] = true
	} else {
		delete(h.open, node)
	}
}

func (h *tapHub) stream(ctx context.Context, t tapTarget) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.admin+"/tap", nil)
	if err != nil {
		return err
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &httpError{status: resp.Status}
	}
	h.setOpen(t.node, true)
	defer h.setOpen(t.node, false)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		ev := TapEvent{Node: t.node}
		if err := json.Unmarshal(line, &ev.TapLine); err != nil {
			h.log.Debug("undecodable tap line", "node", t.node, "error", err)
			continue
		}
		ev.Service = eventService(&ev.TapLine, t.service)
		h.publish(ev)
	}
	return sc.Err()
}

type httpError struct{ status string }

func (e *httpError) Error() string { return "tap: " + e.status }

// eventService is the destination service of a tapped request: the host of the
// outbound cluster for a caller's sidecar, the workload's own service for the
// callee's.
func eventService(l *TapLine, own string) string {
	if fqdn, _, err := names.ParseOutboundCluster(l.UpstreamCluster); err == nil {
		return fqdn
	}
	if l.Reporter == "destination" && own != "" {
		return own
	}
	host := l.Authority
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}

// tapFilter selects events by service (short name, name.namespace, or FQDN) and
// workload (source or destination, name or namespace/name).
type tapFilter struct {
	service, workload string
}

func (f tapFilter) match(ev *TapEvent) bool {
	if f.service != "" {
		s := ev.Service
		if s != f.service && !strings.HasPrefix(s, f.service+".") {
			return false
		}
	}
	if f.workload != "" {
		ok := false
		for _, p := range []TapParty{ev.Source, ev.Destination} {
			if p.Workload == f.workload || p.Namespace+"/"+p.Workload == f.workload {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

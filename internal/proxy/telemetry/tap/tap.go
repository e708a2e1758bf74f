package tap

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/telemetry/accesslog"
)

// Defaults of Config.
const (
	DefaultBacklog = 100
	DefaultBuffer  = 512
)

// keepAlive is how often an idle stream gets an empty line (ndjson) or comment
// (SSE), so that intermediaries and clients see it is alive.
const keepAlive = 15 * time.Second

// Config configures a Tap.
type Config struct {
	// Self is this sidecar's workload, as the access log reports it.
	Self reqinfo.Peer
	// Backlog is how many recent requests a new client receives first; zero means
	// DefaultBacklog.
	Backlog int
	// Buffer is how many requests may wait for a slow client before newer ones are
	// dropped for it; zero means DefaultBuffer.
	Buffer int
}

// Tap fans a sidecar's requests out to the connected clients.
type Tap struct {
	self    reqinfo.Peer
	buffer  int
	clients atomic.Int32

	mu      sync.Mutex // guards ring, next, full, subs
	ring    []accesslog.Entry
	next    int
	full    bool
	subs    map[*client]struct{}
	dropped uint64
}

type client struct {
	ch chan accesslog.Entry
}

// New returns a Tap with no client.
func New(cfg Config) *Tap {
	if cfg.Backlog <= 0 {
		cfg.Backlog = DefaultBacklog
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	return &Tap{self: cfg.Self, buffer: cfg.Buffer, ring: make([]accesslog.Entry, cfg.Backlog), subs: map[*client]struct{}{}}
}

// Active reports whether a client is connected; the request path records only then.
func (t *Tap) Active() bool { return t.clients.Load() > 0 }

// RecordHTTP offers a finished request to the clients.
func (t *Tap) RecordHTTP(info *reqinfo.Info) {
	if t.Active() {
		t.record(accesslog.HTTPEntry(info))
	}
}

// RecordTCP offers a closed TCP connection to the clients.
func (t *Tap) RecordTCP(info *reqinfo.TCPInfo) {
	if t.Active() {
		t.record(accesslog.TCPEntry(info))
	}
}

func (t *Tap) record(e accesslog.Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = e
	t.next++
	if t.next == len(t.ring) {
		t.next, t.full = 0, true
	}
	for c := range t.subs {
		select {
		case c.ch <- e:
		default:
			t.dropped++
		}
	}
}

// Dropped is how many entries slow clients missed.
func (t *Tap) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// subscribe registers a client and returns the backlog, oldest first.
func (t *Tap) subscribe() (*client, []accesslog.Entry) {
	c := &client{ch: make(chan accesslog.Entry, t.buffer)}
	t.mu.Lock()
	defer t.mu.Unlock()
	var backlog []accesslog.Entry
	if t.full {
		backlog = append(backlog, t.ring[t.next:]...)
	}
	backlog = append(backlog, t.ring[:t.next]...)
	t.subs[c] = struct{}{}
	t.clients.Add(1)
	return c, backlog
}

func (t *Tap) unsubscribe(c *client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs, c)
	t.clients.Add(-1)
}

// ServeHTTP streams the backlog, then every request as it finishes, until the client
// goes away: JSON lines (application/x-ndjson), or Server-Sent Events when the
// client accepts text/event-stream.
func (t *Tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	c, backlog := t.subscribe()
	defer t.unsubscribe(c)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	write := func(e *accesslog.Entry) error {
		if sse {
			if _, err := w.Write([]byte("data: ")); err != nil {
				return err
			}
		}
		if err := enc.Encode(e.Line(&t.self)); err != nil {
			return err
		}
		if sse {
			_, err := w.Write([]byte("\n"))
			return err
		}
		return nil
	}
	for i := range backlog {
		if write(&backlog[i]) != nil {
			return
		}
	}
	if rc.Flush() != nil {
		return
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			beat := "\n"
			if sse {
				beat = ": keep-alive\n\n"
			}
			if _, err := w.Write([]byte(beat)); err != nil || rc.Flush() != nil {
				return
			}
		case e := <-c.ch:
			if write(&e) != nil {
				return
			}
			// Write what else is waiting, then flush once.
			for more := true; more; {
				select {
				case e := <-c.ch:
					if write(&e) != nil {
						return
					}
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

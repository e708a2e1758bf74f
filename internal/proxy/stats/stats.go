package stats

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// Stats holds the counters of one sidecar. The zero value is ready to use.
type Stats struct {
	listeners sync.Map // name -> *Counters
	clusters  sync.Map // name -> *Counters
}

// Counters are the counters of one listener or cluster.
type Counters struct {
	// codes counts HTTP responses by class: index 1..5 for 1xx..5xx, 0 for anything
	// else (no response: the client went away).
	codes [6]atomic.Uint64
	// TCPTotal counts TCP proxy connections; TCPActive those open now.
	TCPTotal  atomic.Uint64
	TCPActive atomic.Int64
	// flags counts requests by response flag (index: reqinfo.Flag.Index).
	flags [16]atomic.Uint64
	// Retries counts upstream retries made; RetryOverflow those a circuit breaker
	// (max_retries or the retry budget) refused.
	Retries       atomic.Uint64
	RetryOverflow atomic.Uint64
	// SSLHandshakes counts completed TLS handshakes (a listener's with clients, a
	// cluster's with its endpoints); SSLErrors failed ones.
	SSLHandshakes atomic.Uint64
	SSLErrors     atomic.Uint64
	// CxOverflow counts connections a listener closed at once because it had its
	// maximum open (Envoy's downstream_cx_overflow).
	CxOverflow atomic.Uint64
}

// Flags counts the response flags of one request.
func (c *Counters) Flags(fs reqinfo.Flags) {
	if fs == 0 {
		return
	}
	for _, f := range reqinfo.All() {
		if fs.Has(f) {
			c.flags[f.Index()].Add(1)
		}
	}
}

// Flag returns the count of requests with flag f.
func (c *Counters) Flag(f reqinfo.Flag) uint64 { return c.flags[f.Index()].Load() }

var _ reqinfo.Recorder = (*Stats)(nil)

// Record counts a finished HTTP request: its status class and response flags, for
// its listener and, when it reached one, its cluster.
func (s *Stats) Record(info *reqinfo.Info) {
	lc := s.Listener(info.Listener)
	lc.Response(info.Code)
	lc.Flags(info.Flags)
	if info.Cluster != "" {
		cc := s.Cluster(info.Cluster)
		cc.Response(info.Code)
		cc.Flags(info.Flags)
	}
}

// Listener returns the counters of a listener, creating them on first use.
func (s *Stats) Listener(name string) *Counters { return get(&s.listeners, name) }

// Cluster returns the counters of a cluster, creating them on first use.
func (s *Stats) Cluster(name string) *Counters { return get(&s.clusters, name) }

func get(m *sync.Map, name string) *Counters {
	if c, ok := m.Load(name); ok {
		return c.(*Counters)
	}
	c, _ := m.LoadOrStore(name, &Counters{})
	return c.(*Counters)
}

// Response counts one HTTP response with status code; 0 counts a request that got
// no response.
func (c *Counters) Response(code int) {
	class := code / 100
	if class < 1 || class > 5 {
		class = 0
	}
	c.codes[class].Add(1)
}

// Requests returns the count of responses in a class (1..5), or 0 for those without
// a response.
func (c *Counters) Requests(class int) uint64 {
	if class < 0 || class > 5 {
		return 0
	}
	return c.codes[class].Load()
}

// WriteText writes every counter, one "name value" line each, sorted.
func (s *Stats) WriteText(w io.Writer) error {
	var lines []string
	add := func(kind string, m *sync.Map) {
		m.Range(func(k, v any) bool {
			name, c := k.(string), v.(*Counters)
			for class := 1; class <= 5; class++ {
				if n := c.codes[class].Load(); n > 0 {
					lines = append(lines, fmt.Sprintf("%s.%s.rq_%dxx %d", kind, name, class, n))
				}
			}
			if n := c.codes[0].Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.rq_no_response %d", kind, name, n))
			}
			for _, f := range reqinfo.All() {
				if n := c.flags[f.Index()].Load(); n > 0 {
					lines = append(lines, fmt.Sprintf("%s.%s.rq_flag_%s %d", kind, name, f, n))
				}
			}
			if n := c.Retries.Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.upstream_rq_retry %d", kind, name, n))
			}
			if n := c.RetryOverflow.Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.upstream_rq_retry_overflow %d", kind, name, n))
			}
			if n := c.SSLHandshakes.Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.ssl.handshake %d", kind, name, n))
			}
			if n := c.SSLErrors.Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.ssl.connection_error %d", kind, name, n))
			}
			if n := c.CxOverflow.Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.downstream_cx_overflow %d", kind, name, n))
			}
			if n := c.TCPTotal.Load(); n > 0 {
				lines = append(lines, fmt.Sprintf("%s.%s.tcp_connections_total %d", kind, name, n))
				lines = append(lines, fmt.Sprintf("%s.%s.tcp_connections_active %d", kind, name, c.TCPActive.Load()))
			}
			return true
		})
	}
	add("listener", &s.listeners)
	add("cluster", &s.clusters)
	slices.Sort(lines)
	for _, l := range lines {
		if _, err := io.WriteString(w, l+"\n"); err != nil {
			return err
		}
	}
	return nil
}

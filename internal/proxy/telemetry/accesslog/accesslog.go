package accesslog

import (
	"bufio"
	"encoding/hex"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// DefaultBuffer is how many entries may wait for the writer by default.
const DefaultBuffer = 4096

// DefaultFlushInterval is how long an entry may wait before it is written, by default.
const DefaultFlushInterval = 100 * time.Millisecond

// Config configures an access log.
type Config struct {
	// Writer receives the JSON lines (os.Stdout, a file).
	Writer io.Writer
	// Self is this sidecar's workload: the source of outbound requests, the
	// destination of inbound ones.
	Self reqinfo.Peer
	// Buffer is how many entries may wait for the writer; zero means DefaultBuffer.
	Buffer int
	// FlushInterval is how long the writer lets entries gather before it encodes and
	// writes them all at once (sooner when half the buffer is full); zero means
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Logger receives write errors (once per run of errors).
	Logger *slog.Logger
}

// Log is an access log with its writer goroutine.
type Log struct {
	cfg Config
	// mu guards pending and closed. pending is the queue, oldest first, at most
	// cfg.Buffer entries; the writer takes it whole and hands back its emptied
	// previous batch, so the queue's memory follows the entries waiting (about
	// FlushInterval's worth), not the bound.
	mu      sync.Mutex
	pending []entry
	closed  bool
	dropped atomic.Uint64
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// entry is one line to write: a copy of what the request path recorded.
type entry struct {
	tcp      bool
	inbound  bool
	start    time.Time
	duration time.Duration
	traceID  [16]byte

	method, authority, path, proto string
	code                           int
	grpcStatus                     int
	flags                          reqinfo.Flags
	cluster, host                  string
	peer                           *reqinfo.Peer
	// principal is the mutual TLS peer's SPIFFE ID of an inbound request.
	principal      string
	sent, received int64
	// audit is set when an AUDIT policy matched the request.
	audit bool
}

// New starts the writer goroutine; Close stops it.
func New(cfg Config) *Log {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// RecordHTTP queues the line of a finished request, or drops it when the queue is full.
func (l *Log) RecordHTTP(info *reqinfo.Info) { l.queue(httpEntry(info)) }

// RecordTCP queues the line of a closed TCP connection.
func (l *Log) RecordTCP(info *reqinfo.TCPInfo) { l.queue(tcpEntry(info)) }

func (l *Log) queue(e entry) {
	l.mu.Lock()
	n := len(l.pending)
	if n >= l.cfg.Buffer || l.closed {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.pending = append(l.pending, e)
	l.mu.Unlock()
	// The first entry after the writer took the queue wakes it, and so does the one
	// that fills half of it (the writer then stops waiting for FlushInterval).
	if n == 0 || n+1 == l.cfg.Buffer/2 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// take hands the writer the queued entries and gives the queue spare, emptied, as
// its storage.
func (l *Log) take(spare []entry) (batch []entry) {
	l.mu.Lock()
	batch, l.pending = l.pending, spare[:0]
	l.mu.Unlock()
	return batch
}

// queued is how many entries wait.
func (l *Log) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// Dropped is how many entries were dropped because the queue was full.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Close writes what is queued, stops the writer and waits for it. Entries recorded
// after Close are dropped.
func (l *Log) Close() {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
	})
	<-l.done
}

// run is the writer goroutine. Woken by the first entry after a quiet spell, it
// waits FlushInterval (less if half the queue fills), then takes every queued entry,
// encodes them into one buffer and writes it: at a high request rate that is one
// wake-up and one write every FlushInterval, not one per request.
func (l *Log) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.cfg.Writer, 64<<10)
	var line []byte   // reused: encoding an entry allocates nothing
	var spare []entry // the previous batch, emptied: the queue's next storage
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failing := false
	report := func(err error) {
		switch {
		case err != nil && !failing:
			l.cfg.Logger.Warn("writing the access log", "error", err)
			failing = true
		case err == nil:
			failing = false
		}
		if err != nil {
			// A bufio.Writer keeps its first error: start again with what comes next.
			w.Reset(l.cfg.Writer)
		}
	}
	drain := func() {
		batch := l.take(spare)
		for i := range batch {
			line = appendLine(line[:0], &l.cfg.Self, &batch[i])
			if _, err := w.Write(line); err != nil {
				report(err)
			}
		}
		report(w.Flush())
		clear(batch) // the entries' strings and peers are garbage now
		spare = batch
		if cap(spare) > spareCap && len(batch) < cap(spare)/4 {
			// A burst grew the queue: let the next quiet batch give it back.
			spare = nil
		}
	}
	for {
		select {
		case <-l.wake:
		case <-l.stop:
			drain()
			return
		}
		if l.queued() < l.cfg.Buffer/2 {
			timer.Reset(l.cfg.FlushInterval)
			select {
			case <-timer.C:
			case <-l.wake:
				timer.Stop()
			case <-l.stop:
				timer.Stop()
			}
		}
		drain()
	}
}

// spareCap is the largest batch storage (in entries) the writer keeps across a quiet
// batch: at 1000 requests a second and the default FlushInterval a batch holds about
// 100 entries.
const spareCap = 1024

// Line is the JSON form of one access log entry.
type Line struct {
	Time            string  `json:"time"`
	TraceID         string  `json:"trace_id"`
	Method          string  `json:"method"`
	Authority       string  `json:"authority"`
	Path            string  `json:"path"`
	Protocol        string  `json:"protocol"`
	ResponseCode    int     `json:"response_code"`
	GRPCStatus      *int    `json:"grpc_status,omitempty"`
	ResponseFlags   string  `json:"response_flags"`
	DurationMS      float64 `json:"duration_ms"`
	BytesSent       int64   `json:"bytes_sent"`
	BytesReceived   int64   `json:"bytes_received"`
	UpstreamCluster string  `json:"upstream_cluster"`
	UpstreamHost    string  `json:"upstream_host"`
	Source          Party   `json:"source"`
	Destination     Party   `json:"destination"`
	Reporter        string  `json:"reporter"`
	// Audit is true when an AUDIT AuthorizationPolicy matched the request.
	Audit bool `json:"audit,omitempty"`
}

// Party is one side of a request: its workload, namespace and SPIFFE ID, empty when
// unknown.
type Party struct {
	Workload  string `json:"workload"`
	Namespace string `json:"namespace"`
	Principal string `json:"principal"`
}

func party(p *reqinfo.Peer) Party {
	if p == nil {
		return Party{}
	}
	return Party{Workload: p.Workload, Namespace: p.Namespace, Principal: p.Principal}
}

func (l *Log) line(e entry) *Line { return render(&l.cfg.Self, e) }

// render is the line of e as reported by the sidecar of workload self.
func render(self *reqinfo.Peer, e entry) *Line {
	ln := &Line{
		Time:            e.start.UTC().Format(time.RFC3339Nano),
		Method:          e.method,
		Authority:       e.authority,
		Path:            e.path,
		Protocol:        e.proto,
		ResponseCode:    e.code,
		ResponseFlags:   e.flags.String(),
		DurationMS:      float64(e.duration.Microseconds()) / 1000,
		BytesSent:       e.sent,
		BytesReceived:   e.received,
		UpstreamCluster: e.cluster,
		UpstreamHost:    e.host,
		Audit:           e.audit,
	}
	if e.traceID != [16]byte{} {
		ln.TraceID = hex.EncodeToString(e.traceID[:])
	}
	if e.grpcStatus >= 0 {
		s := e.grpcStatus
		ln.GRPCStatus = &s
	}
	me := party(self)
	if e.inbound {
		ln.Reporter, ln.Source, ln.Destination = "destination", party(e.peer), me
		ln.Source.Principal = e.principal
	} else {
		ln.Reporter, ln.Source, ln.Destination = "source", me, party(e.peer)
	}
	return ln
}

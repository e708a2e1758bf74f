package accesslog

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// DefaultBuffer is how many entries may wait for the writer by default.
const DefaultBuffer = 4096

// Config configures an access log.
type Config struct {
	// Writer receives the JSON lines (os.Stdout, a file).
	Writer io.Writer
	// Self is this sidecar's workload: the source of outbound requests, the
	// destination of inbound ones.
	Self reqinfo.Peer
	// Buffer is how many entries may wait for the writer; zero means DefaultBuffer.
	Buffer int
	// Logger receives write errors (once per run of errors).
	Logger *slog.Logger
}

// Log is an access log with its writer goroutine.
type Log struct {
	cfg     Config
	entries chan entry
	dropped atomic.Uint64
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{cfg: cfg, entries: make(chan entry, cfg.Buffer), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// RecordHTTP queues the line of a finished request, or drops it when the queue is full.
func (l *Log) RecordHTTP(info *reqinfo.Info) { l.queue(httpEntry(info)) }

// RecordTCP queues the line of a closed TCP connection.
func (l *Log) RecordTCP(info *reqinfo.TCPInfo) { l.queue(tcpEntry(info)) }

func (l *Log) queue(e entry) {
	select {
	case l.entries <- e:
	default:
		l.dropped.Add(1)
	}
}

// Dropped is how many entries were dropped because the queue was full.
func (l *Log) Dropped() uint64 { return l.dropped.Load() }

// Close writes what is queued, stops the writer and waits for it.
func (l *Log) Close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

func (l *Log) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.cfg.Writer, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	failing := false
	write := func(e entry) {
		err := enc.Encode(l.line(e))
		if len(l.entries) == 0 && err == nil {
			err = w.Flush()
		}
		switch {
		case err != nil && !failing:
			l.cfg.Logger.Warn("writing the access log", "error", err)
			failing = true
		case err == nil:
			failing = false
		}
	}
	for {
		select {
		case e := <-l.entries:
			write(e)
		case <-l.stop:
			for {
				select {
				case e := <-l.entries:
					write(e)
				default:
					w.Flush()
					return
				}
			}
		}
	}
}

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

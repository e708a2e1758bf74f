package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/telemetry/accesslog"
	"trellis.dev/trellis/internal/proxy/telemetry/metrics"
	"trellis.dev/trellis/internal/proxy/telemetry/tap"
	"trellis.dev/trellis/internal/proxy/telemetry/tracing"
)

// Config configures the sidecar's telemetry.
type Config struct {
	// Self is this sidecar's workload (name, namespace, app and version labels, and
	// SPIFFE ID when it has a certificate).
	Self reqinfo.Peer
	// Service is the FQDN of the service the workload declares; empty when none.
	Service string
	// Metrics configures the Prometheus metrics (Self and Service are filled in).
	Metrics metrics.Config
	// AccessLog receives the access log's JSON lines; nil: no access log.
	AccessLog io.Writer
	// Tracing, when set, turns tracing on.
	Tracing *tracing.Config
	Logger  *slog.Logger
}

// Telemetry observes the sidecar's requests and connections.
type Telemetry struct {
	cfg     Config
	metrics *metrics.Metrics
	log     *accesslog.Log
	tracer  *tracing.Tracer
	tap     *tap.Tap
	peers   peerCache
}

// New sets up the metrics, and the access log and tracing when configured. Close
// stops them.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.Logger == nil {
		return nil, errors.New("telemetry: no logger")
	}
	mc := cfg.Metrics
	mc.Self, mc.Service = cfg.Self, cfg.Service
	m, err := metrics.New(mc)
	if err != nil {
		return nil, fmt.Errorf("setting up metrics: %w", err)
	}
	for _, c := range processCollectors() {
		if err := m.Registry().Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	t := &Telemetry{cfg: cfg, metrics: m, tap: tap.New(tap.Config{Self: cfg.Self})}
	if cfg.Tracing != nil {
		tc := *cfg.Tracing
		if tc.Logger == nil {
			tc.Logger = cfg.Logger
		}
		if t.tracer, err = tracing.New(ctx, tc); err != nil {
			return nil, fmt.Errorf("setting up tracing: %w", err)
		}
	}
	if cfg.AccessLog != nil {
		t.log = accesslog.New(accesslog.Config{Writer: cfg.AccessLog, Self: cfg.Self, Logger: cfg.Logger})
		dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "trellis_access_log_dropped_total",
			Help: "Access log lines dropped because the writer was behind.",
		}, func() float64 { return float64(t.log.Dropped()) })
		if err := m.Registry().Register(dropped); err != nil {
			t.Close(ctx)
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return t, nil
}

// Metrics returns the metrics, for the metrics server.
func (t *Telemetry) Metrics() *metrics.Metrics { return t.metrics }

// Tap returns the live request tap (the admin /tap endpoint).
func (t *Telemetry) Tap() *tap.Tap { return t.tap }

// Tracer returns the tracer, nil when tracing is off.
func (t *Telemetry) Tracer() *tracing.Tracer { return t.tracer }

// AccessLog returns the access log, nil when it is off.
func (t *Telemetry) AccessLog() *accesslog.Log { return t.log }

// PeerHeader is this workload's x-trellis-peer value.
func (t *Telemetry) PeerHeader() string { return EncodePeer(t.cfg.Self) }

// Start fills the request's telemetry fields, takes the x-trellis-peer header off
// the request (decoding it on inbound listeners), and starts the trace span.
func (t *Telemetry) Start(r *http.Request, info *reqinfo.Info) {
	tm := &info.Telemetry
	tm.Method, tm.Authority, tm.Path, tm.Proto = r.Method, r.Host, r.URL.Path, r.Proto
	if ct := r.Header["Content-Type"]; len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc") {
		tm.GRPC = true
	}
	if v, ok := r.Header[reqinfo.PeerHeader]; ok {
		if tm.Inbound && len(v) > 0 {
			tm.Peer = t.peers.get(v[0])
		}
		delete(r.Header, reqinfo.PeerHeader)
	}
	if t.tracer != nil {
		t.tracer.Start(r, info)
	}
}

// Record ends the request's span, counts it, queues its access log line, and offers
// it to the tap's clients when there are any.
func (t *Telemetry) Record(info *reqinfo.Info) {
	if t.tracer != nil {
		t.tracer.End(info)
	}
	t.metrics.RecordHTTP(info)
	if t.log != nil {
		t.log.RecordHTTP(info)
	}
	t.tap.RecordHTTP(info)
}

// TCPOpened counts a TCP connection opened.
func (t *Telemetry) TCPOpened(info *reqinfo.TCPInfo) { t.metrics.TCPOpened(info) }

// TCPClosed counts a TCP connection closed and queues its access log line.
func (t *Telemetry) TCPClosed(info *reqinfo.TCPInfo) {
	t.metrics.TCPClosed(info)
	if t.log != nil {
		t.log.RecordTCP(info)
	}
	t.tap.RecordTCP(info)
}

// Close writes the queued access log lines and exports the queued spans, within ctx.
func (t *Telemetry) Close(ctx context.Context) error {
	if t.log != nil {
		t.log.Close()
	}
	if t.tracer != nil {
		return t.tracer.Shutdown(ctx)
	}
	return nil
}

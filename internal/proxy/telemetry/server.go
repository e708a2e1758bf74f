package telemetry

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"trellis.dev/trellis/internal/proxy/internal/httpserve"
	"trellis.dev/trellis/internal/serverlimits"
)

// Paths of the metrics server.
const (
	MetricsPath = "/stats/prometheus"
	ReadyPath   = "/healthz/ready"
)

// ServerConfig configures the metrics server.
type ServerConfig struct {
	// Address is where to listen (0.0.0.0:15020 in a pod).
	Address string
	// Gatherer is what /stats/prometheus shows.
	Gatherer prometheus.Gatherer
	// LabelSets, if set, tells how large the page is (Metrics.LabelSets): a page of
	// more than CompressAboveLabelSets label sets is compressed when the client
	// accepts it, a smaller one is sent as it is.
	LabelSets func() int
	// Ready answers /healthz/ready (200 when true, 503 when false), as the admin
	// /ready does.
	Ready func() bool
	// AppProbes, if set, answers the app probes under /app-health/ (package
	// appprobe): in a pod, the kubelet's probes of the app, rewritten by the injector.
	AppProbes http.Handler
	// Limits bound the server's clients (docs/limits.md).
	Limits serverlimits.Limits
	Logger *slog.Logger
}

// Server serves the metrics (/stats/prometheus) and readiness (/healthz/ready).
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// NewServer binds the metrics address.
func NewServer(cfg ServerConfig) (*Server, error) {
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("binding metrics address: %w", err)
	}
	errLog := slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, metricsHandler(cfg.Gatherer, cfg.LabelSets, errLog))
	mux.HandleFunc("GET "+ReadyPath, httpserve.Ready(cfg.Ready))
	if cfg.AppProbes != nil {
		mux.Handle("GET /app-health/", cfg.AppProbes)
	}
	srv := cfg.Limits.Server(mux, cfg.Logger)
	return &Server{ln: cfg.Limits.Listener(ln), srv: srv}, nil
}

// CompressAboveLabelSets is the size of the metrics page, in request and TCP label
// sets, above which it is compressed (gzip, or what else the client and the
// Prometheus client library agree on). A page of one label set is about 70 KB of
// text, and each more adds about 40 KB; compressing costs a compressor of about 850 KB
// per scrape (Go's compress/flate), which in a sidecar serving 1000 req/s added a
// megabyte of anonymous memory and a thousand page faults a minute at a 5 s scrape
// interval (docs/benchmarks.md, "Sidecar memory"). Small pages go as they are; large
// ones, where compression saves megabytes per scrape, are compressed.
const CompressAboveLabelSets = 4

// metricsHandler serves the gatherer's metrics, compressed only when labelSets
// reports a page larger than CompressAboveLabelSets (always, when labelSets is nil).
func metricsHandler(g prometheus.Gatherer, labelSets func() int, errLog *log.Logger) http.HandlerFunc {
	plain := promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: errLog, DisableCompression: true})
	compressed := promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: errLog})
	return func(w http.ResponseWriter, r *http.Request) {
		if labelSets != nil && labelSets() <= CompressAboveLabelSets {
			plain.ServeHTTP(w, r)
			return
		}
		compressed.ServeHTTP(w, r)
	}
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then closes the server.
func (s *Server) Serve(ctx context.Context) error {
	if err := httpserve.Serve(ctx, s.srv, s.ln); err != nil {
		return fmt.Errorf("serving metrics: %w", err)
	}
	return nil
}

// Close releases the bound address of a server that never served.
func (s *Server) Close() error { return s.ln.Close() }

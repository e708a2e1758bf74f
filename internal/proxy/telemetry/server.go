package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	// Ready answers /healthz/ready (200 when true, 503 when false), as the admin
	// /ready does.
	Ready  func() bool
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
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: errLog}))
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !cfg.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	return &Server{ln: ln, srv: srv}, nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then closes the server.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving metrics: %w", err)
	case <-ctx.Done():
		s.srv.Close()
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving metrics: %w", err)
		}
		return nil
	}
}

// Close releases the bound address of a server that never served.
func (s *Server) Close() error { return s.ln.Close() }

package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"

	"trellis.dev/trellis/internal/proxy/internal/httpserve"
	"trellis.dev/trellis/internal/serverlimits"
)

// State is what the admin endpoints show of the sidecar.
type State interface {
	// Ready reports whether the first complete configuration is applied (and the
	// sidecar is not draining).
	Ready() bool
	// WriteConfigDump writes the accepted resources as JSON.
	WriteConfigDump(w io.Writer) error
	// WriteStats writes the counters as text.
	WriteStats(w io.Writer) error
}

// CertsState is implemented by a State that has TLS certificates to show at /certs.
type CertsState interface {
	// WriteCerts writes the certificates and trust bundle in use as JSON (never a
	// private key).
	WriteCerts(w io.Writer) error
}

// TapState is implemented by a State that streams its requests at /tap.
type TapState interface {
	// ServeTap streams the requests the sidecar carries until the client goes away.
	ServeTap(w http.ResponseWriter, r *http.Request)
}

// Config configures the admin server.
type Config struct {
	// Address is where to listen; its host must be a loopback IP or "localhost".
	Address string
	State   State
	// Limits bound the admin server's clients (docs/limits.md); it reads no bodies.
	Limits serverlimits.Limits
	Logger *slog.Logger
}

// Server is the admin HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// New binds the admin address. It refuses any address that is not loopback.
func New(cfg Config) (*Server, error) {
	if err := checkLoopback(cfg.Address); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("binding admin address: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", httpserve.Ready(cfg.State.Ready))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		write(w, "application/json", cfg.State.WriteConfigDump)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		write(w, "text/plain; charset=utf-8", cfg.State.WriteStats)
	})
	if cs, ok := cfg.State.(CertsState); ok {
		mux.HandleFunc("GET /certs", func(w http.ResponseWriter, _ *http.Request) {
			write(w, "application/json", cs.WriteCerts)
		})
	}
	if ts, ok := cfg.State.(TapState); ok {
		mux.HandleFunc("GET /tap", ts.ServeTap)
	}
	handleProfiles(mux)
	return &Server{ln: cfg.Limits.Listener(ln), srv: cfg.Limits.Server(mux, cfg.Logger)}, nil
}

// handleProfiles serves the Go runtime's profiles under /debug/pprof/ (GET only, on
// the loopback admin listener): heap and allocations, goroutines, a CPU profile
// (?seconds=N) and an execution trace, read with `go tool pprof` or `go tool trace`.
// They show where the sidecar's memory and CPU go (docs/benchmarks.md, "Sidecar
// memory") and change nothing but the runtime's sampling while a CPU profile or
// trace runs.
func handleProfiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// write renders into a buffer first, so that a failure is a clean 500.
func write(w http.ResponseWriter, contentType string, render func(io.Writer) error) {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(buf.Bytes())
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then closes the server.
func (s *Server) Serve(ctx context.Context) error {
	if err := httpserve.Serve(ctx, s.srv, s.ln); err != nil {
		return fmt.Errorf("serving admin: %w", err)
	}
	return nil
}

// Close releases the bound address of a server that never served.
func (s *Server) Close() error { return s.ln.Close() }

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("admin address %q is not a loopback address; the admin endpoints must not be reachable from other hosts", addr)
	}
	return nil
}

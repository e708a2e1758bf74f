package demo

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"trellis.dev/trellis/internal/local"
)

// Mesh is the demo's mesh file. examples/demo/mesh.yaml is a copy of it (a test keeps
// them equal), so that `trellis up -f examples/demo/mesh.yaml` runs the same demo.
//
//go:embed demo.yaml
var Mesh []byte

// Config configures `trellis demo`.
type Config struct {
	// Duration stops the demo by itself after that long; 0 runs it until ctx is done.
	Duration time.Duration
	// StatePath, XDSAddr, DashboardAddr, DataDir and Binary are passed to local.Run.
	StatePath     string
	XDSAddr       string
	DashboardAddr string
	DataDir       string
	Binary        string
	Logger        *slog.Logger
	// Out receives the summary of what runs where; Stdout and Stderr the children's
	// output (see local.Config).
	Out            io.Writer
	Stdout, Stderr io.Writer
}

// Run runs the demo mesh with `trellis up` (local.Run) until ctx is done or
// cfg.Duration has passed, and prints, once everything is ready, what runs where.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	dir, err := os.MkdirTemp("", "trellis-demo-")
	if err != nil {
		return fmt.Errorf("creating the demo directory: %w", err)
	}
	defer os.RemoveAll(dir)
	meshPath := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshPath, Mesh, 0o600); err != nil {
		return fmt.Errorf("writing the demo mesh file: %w", err)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var once sync.Once
	err = local.Run(ctx, local.Config{
		Files:         []string{meshPath},
		StatePath:     cfg.StatePath,
		XDSAddr:       cfg.XDSAddr,
		DataDir:       cfg.DataDir,
		DashboardAddr: cfg.DashboardAddr,
		Binary:        cfg.Binary,
		// The load generator's requests would drown the summary and load lines.
		AccessLog: "off",
		Logger:    cfg.Logger,
		Stdout:    cfg.Stdout,
		Stderr:    cfg.Stderr,
		OnState: func(st local.State) {
			once.Do(func() { fmt.Fprint(cfg.Out, Summary(st, cfg.Duration)) })
		},
	})
	if err != nil {
		return fmt.Errorf("running the demo: %w", err)
	}
	return nil
}

// Summary tells what the demo runs and where to look.
func Summary(st local.State, duration time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nTrellis demo is running: control plane (xDS %s) and %d workloads.\n\n", st.ControlPlane.XDS, len(st.Workloads))
	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  WORKLOAD\tAPP\tSIDECAR OUTBOUND\tSIDECAR ADMIN")
	outbound := ""
	for _, w := range st.Workloads {
		app := strings.Join(w.App, ",")
		if app == "" {
			app = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", w.Name, app, w.Outbound, w.Admin)
		if w.Name == "loadgen" {
			outbound = w.Outbound
		}
	}
	tw.Flush()
	if st.ControlPlane.Dashboard != "" {
		fmt.Fprintf(&b, "\nDashboard (service graph, golden signals, live tap): http://%s/\n", st.ControlPlane.Dashboard)
		fmt.Fprintf(&b, "  or in a terminal: trellis stat|top|tap --dashboard http://%s\n", st.ControlPlane.Dashboard)
	}
	if outbound != "" {
		fmt.Fprintf(&b, "\nCall the mesh through the loadgen's sidecar:\n")
		fmt.Fprintf(&b, "  curl -x http://%s http://frontend:9080/\n", outbound)
		fmt.Fprintf(&b, "  curl -x http://%s http://reviews:9080/reviews      (v1 and v2 in turn)\n", outbound)
		fmt.Fprintf(&b, "  curl -x http://%s http://reviews-v2:9080/reviews   (v2 only)\n", outbound)
	}
	if len(st.Workloads) > 0 {
		fmt.Fprintf(&b, "Look inside a sidecar:\n  curl http://%s/config_dump\n  curl http://%s/stats\n", st.Workloads[0].Admin, st.Workloads[0].Admin)
	}
	if duration > 0 {
		fmt.Fprintf(&b, "\nThe demo stops by itself after %s; Ctrl-C stops it now.\n\n", duration)
	} else {
		fmt.Fprintf(&b, "\nCtrl-C stops the demo.\n\n")
	}
	return b.String()
}

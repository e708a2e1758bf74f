// Command xdsload measures the control plane at scale: thousands of simulated
// proxies on Delta ADS against `trellis control`, timing how long a configuration
// change takes to reach and be ACKed by all of them. `make bench-xds` runs it; see
// docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"trellis.dev/trellis/bench/xdsload"
)

func main() { os.Exit(run()) }

// run runs the program and returns its exit code, so that its defers run.
func run() int {
	var cfg xdsload.Config
	var proxies, scopings, out, name string
	flag.StringVar(&proxies, "proxies", "1000,5000", "numbers of simulated proxies, one run each, comma-separated")
	flag.IntVar(&cfg.Services, "services", 1000, "services in the mesh")
	flag.IntVar(&cfg.MaxUnscoped, "unscoped-max", 1000, "skip unscoped runs of more proxies than this (0: no limit)")
	flag.IntVar(&cfg.Namespaces, "namespaces", 50, "namespaces the services are dealt over")
	flag.StringVar(&scopings, "scoping", "sidecar", "scopings, one run each per number of proxies, comma-separated: sidecar (a Sidecar per namespace: itself and the shared namespace), none (every proxy sees every service)")
	flag.IntVar(&cfg.Changes, "changes", 3, "changes of each kind (service, endpoint) per run")
	flag.IntVar(&cfg.ConnectRate, "rate", 500, "proxies connecting per second")
	flag.DurationVar(&cfg.ChangeTimeout, "timeout", 3*time.Minute, "how long to wait for every proxy to ACK a change")
	maxRSS := flag.Float64("max-rss", 6, "stop a run when the control plane's RSS exceeds this many GiB")
	flag.StringVar(&cfg.Trellis, "trellis", "", "trellis binary (default: built from this module)")
	flag.StringVar(&out, "out", "bench/results", "directory of the report")
	flag.StringVar(&name, "name", "xds-latest", "base name of the report files")
	flag.Parse()

	for _, p := range strings.Split(proxies, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "xdsload: -proxies: %q is not a positive number\n", p)
			return 2
		}
		cfg.Proxies = append(cfg.Proxies, n)
	}
	for _, s := range strings.Split(scopings, ",") {
		cfg.Scopings = append(cfg.Scopings, strings.TrimSpace(s))
	}
	cfg.MaxControlRSS = uint64(*maxRSS * (1 << 30))
	cfg.WorkDir = filepath.Join(out, "tmp", name)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "xdsload:", err)
		return 1
	}
	if cfg.Trellis == "" {
		tmp, err := os.MkdirTemp("", "trellis-xdsload-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdsload:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		cfg.Trellis = filepath.Join(tmp, "trellis")
		build := exec.Command("go", "build", "-o", cfg.Trellis, "./cmd/trellis")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "xdsload: building trellis (run from the module root):", err)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := xdsload.Run(ctx, cfg)
	if rep != nil {
		if werr := rep.Write(out, name); werr != nil {
			fmt.Fprintln(os.Stderr, "xdsload:", werr)
			return 1
		}
		rep.WriteMarkdown(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdsload:", err)
		return 1
	}
	return 0
}

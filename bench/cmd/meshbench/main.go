// Command meshbench runs the data-plane benchmark: fortio load through a direct
// connection, one HAProxy hop and two Trellis sidecars, side by side, and writes the
// report under bench/results. `make bench` runs it; see docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"trellis.dev/trellis/bench"
)

func main() {
	var cfg bench.Config
	duration := os.Getenv("BENCH_DURATION")
	if duration == "" {
		duration = "30s"
	}
	var workloads, paths, pkgs string
	flag.StringVar(&duration, "t", duration, "duration of each run (default $BENCH_DURATION, else 30s)")
	flag.IntVar(&cfg.QPS, "qps", 1000, "request rate of the fixed-rate runs")
	flag.IntVar(&cfg.Connections, "c", 16, "connections")
	flag.IntVar(&cfg.Payload, "payload", 1024, "request (and echoed response) body size in bytes")
	flag.StringVar(&workloads, "workloads", strings.Join(bench.WorkloadNames, ","), "workloads to run, comma-separated")
	flag.StringVar(&paths, "paths", strings.Join(bench.PathNames, ","), "paths to measure, comma-separated (direct always runs)")
	flag.StringVar(&cfg.Trellis, "trellis", "", "trellis binary (default: built from this module)")
	flag.StringVar(&cfg.OutDir, "out", "", "directory of the report (default bench/results)")
	flag.StringVar(&cfg.Name, "name", "latest", "base name of the report files")
	flag.BoolVar(&cfg.TryMTLS, "try-mtls", false, "run the trellis-mtls path before it is declared available (bench.MTLSAvailable)")
	flag.BoolVar(&cfg.GoBench, "gobench", true, "also run the Go benchmarks (go test -bench -benchmem)")
	flag.StringVar(&pkgs, "gobench-pkgs", "./internal/...", "packages of the Go benchmarks, comma-separated")
	gobenchOnly := flag.Bool("gobench-only", false, "run only the Go benchmarks and replace them in the existing report (-out, -name)")
	flag.Parse()

	d, err := time.ParseDuration(duration)
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshbench: duration %q: %v\n", duration, err)
		os.Exit(2)
	}
	cfg.Duration = d
	cfg.Workloads = strings.Split(workloads, ",")
	cfg.Paths = strings.Split(paths, ",")
	cfg.GoBenchPackages = strings.Split(pkgs, ",")
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := bench.Run
	if *gobenchOnly {
		run = bench.RefreshGoBench
	}
	if _, err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"trellis.dev/trellis/bench/procstat"
)

// Run runs the benchmark that cfg describes: it starts the echo server and every
// path, runs each workload on each path in turn, then the Go benchmarks if asked,
// and writes the report (markdown, JSON, PNG) to cfg.OutDir and the markdown to
// cfg.Out. A path that cannot start is reported as an error in its results; Run
// fails only when nothing can be measured or the report cannot be written.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the work directory: %w", err)
	}
	rep := &Report{Started: time.Now(), Machine: machineInfo(cfg), Settings: Settings{
		Duration: cfg.Duration.String(), QPS: cfg.QPS, Connections: cfg.Connections, PayloadBytes: cfg.Payload,
	}}

	echo, err := startEchoServer(ctx, cfg.Fortio, cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	defer echo.Stop(5 * time.Second)

	paths, failed := startPaths(ctx, &cfg, echo, rep)
	defer func() {
		if rep.builtTrellis != "" {
			os.RemoveAll(filepath.Dir(rep.builtTrellis))
		}
		for _, p := range paths {
			p.stop()
		}
	}()
	for name, p := range paths {
		if err := probe(ctx, p); err != nil {
			failed[name] = err.Error()
			p.stop()
			delete(paths, name)
		}
	}
	for name, p := range paths {
		if s, ok := p.(settler); ok {
			if err := s.settle(ctx); err != nil {
				log.Warn("the path did not settle; measuring anyway", "path", name, "error", err)
			}
		}
	}

	rep.Machine.LoadBefore = loadAvg()
	if l := load1(rep.Machine.LoadBefore); l > 0.5 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("Other work was running on this machine: load average %s just before the runs (see the \"others' CPU\" column).", rep.Machine.LoadBefore))
	}
	for _, wl := range cfg.Workloads {
		for _, name := range cfg.Paths {
			r := Result{Path: name, Workload: wl, RequestedQPS: cfg.QPS}
			if wl == WorkloadMax {
				r.RequestedQPS = 0
			}
			p, ok := paths[name]
			switch {
			case !ok && failed[name] != "":
				r.Error = failed[name]
			case !ok:
				r.Skipped = skipReason(name, cfg)
			default:
				log.Info("running", "workload", wl, "path", name, "duration", cfg.Duration)
				measure(ctx, cfg, echo, p, &r)
				if r.Error != "" {
					log.Warn("run failed", "workload", wl, "path", name, "error", r.Error)
				}
			}
			rep.Results = append(rep.Results, r)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.compare()

	for _, p := range paths {
		p.stop()
	}
	paths = nil
	if cfg.GoBench {
		log.Info("running the Go benchmarks", "packages", cfg.GoBenchPackages)
		rep.GoBench = runGoBench(ctx, cfg.ModuleDir, cfg.GoBenchPackages, filepath.Join(cfg.WorkDir, "gobench.txt"))
	}
	rep.Finished = time.Now()
	if err := rep.write(cfg.OutDir, cfg.Name); err != nil {
		return rep, err
	}
	if err := rep.WriteMarkdown(cfg.Out); err != nil {
		return rep, err
	}
	return rep, nil
}

// skipReason says why a path that was not started has no results.
func skipReason(name string, cfg Config) string {
	switch name {
	case PathTrellisMTLS:
		return "mTLS: not yet available"
	case PathHAProxy:
		return "haproxy: not installed (apt-get install -y haproxy)"
	}
	return "not started"
}

// startPaths starts every path of cfg.Paths that can run. failed maps the paths that
// could not start to why.
func startPaths(ctx context.Context, cfg *Config, echo *echoServer, rep *Report) (map[string]path, map[string]string) {
	paths := map[string]path{}
	failed := map[string]string{}
	evicted := false // the trellis binary's page cache, before its first start
	for _, name := range cfg.Paths {
		var p path
		var err error
		switch name {
		case PathDirect:
			p = directPath{echo: echo}
		case PathHAProxy:
			if cfg.HAProxy == "" {
				rep.Notes = append(rep.Notes, skipReason(name, *cfg)+": the haproxy path is skipped.")
				continue
			}
			p, err = startHAProxy(ctx, cfg.HAProxy, cfg.WorkDir, echo)
		case PathTrellis, PathTrellisMTLS, PathTrellisH2:
			mtls := name == PathTrellisMTLS
			if mtls && !MTLSAvailable && !cfg.TryMTLS {
				rep.Notes = append(rep.Notes, "mTLS: not yet available (issue 4); the trellis-mtls path is not measured.")
				fmt.Fprintln(cfg.Out, "mTLS: not yet available")
				continue
			}
			if cfg.Trellis == "" {
				if cfg.Trellis, err = buildTrellis(ctx, cfg.ModuleDir); err != nil {
					break
				}
				rep.builtTrellis = cfg.Trellis
			}
			if !evicted {
				evicted = true
				if err := evictPageCache(cfg.Trellis); err != nil {
					cfg.Logger.Warn("the trellis binary stays in the page cache as written", "error", err)
				}
			}
			p, err = startTrellis(ctx, cfg.Trellis, cfg.WorkDir, name, echo, meshParams{MTLS: mtls, H2Upgrade: name == PathTrellisH2})
		}
		if err != nil {
			failed[name] = err.Error()
			cfg.Logger.Warn("path not started", "path", name, "error", err)
			continue
		}
		paths[name] = p
	}
	return paths, failed
}

// buildTrellis builds ./cmd/trellis of the module into a temporary directory, which
// Run removes when it returns.
func buildTrellis(ctx context.Context, moduleDir string) (string, error) {
	dir, err := os.MkdirTemp("", "trellis-bench-")
	if err != nil {
		return "", fmt.Errorf("building trellis: %w", err)
	}
	built, bin := filepath.Join(dir, "trellis.linked"), filepath.Join(dir, "trellis")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", built, "./cmd/trellis")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building trellis: %w\n%s", err, out)
	}
	if err := copyFile(bin, built); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("building trellis: %w", err)
	}
	os.Remove(built)
	return bin, nil
}

// copyFile writes a copy of the executable src to dst with sequential writes, as cp or
// an image extraction does. The sidecars' file-backed RSS depends on how the binary's
// pages sit in the page cache: the linker's output lies in large folios that the
// kernel maps whole, 15 to 20 MiB more per process than a copy (docs/benchmarks.md,
// "Sidecar memory"), which would make RSS vary with the build rather than the code.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	buf := make([]byte, 128<<10)
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

// probe waits until the path carries an HTTP request and echoes a TCP write: for a
// mesh, until its sidecars have their routes and endpoints.
func probe(ctx context.Context, p path) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		errHTTP := probeHTTP(ctx, client, p.target(WorkloadHTTP))
		errTCP := probeTCP(ctx, p.target(WorkloadTCP))
		if errHTTP == nil && errTCP == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("probing the path: %w", errors.Join(ctx.Err(), errHTTP, errTCP))
		case <-tick.C:
		}
	}
}

func probeHTTP(ctx context.Context, client *http.Client, t target) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.dest, nil)
	if err != nil {
		return err
	}
	if t.host != "" {
		req.Host = t.host
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s (Host %s): %s", t.dest, t.host, resp.Status)
	}
	return nil
}

func probeTCP(ctx context.Context, t target) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(t.dest, "tcp://"))
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	msg := []byte("trellis-bench-probe")
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("reading the TCP echo from %s: %w", t.dest, err)
	}
	return nil
}

// measure runs one workload on one path and fills r.
func measure(ctx context.Context, cfg Config, echo *echoServer, p path, r *Result) {
	procs := p.procs()
	before := make([]procstat.Sample, len(procs))
	reset := make([]bool, len(procs))
	for i, m := range procs {
		reset[i] = procstat.ResetPeak(m.pid) == nil
		s, err := procstat.Read(m.pid)
		if err != nil {
			r.Error = err.Error()
			return
		}
		before[i] = s
	}
	echoBefore, _ := procstat.CPU(echo.PID())
	busyBefore, _ := machineBusy()
	base := filepath.Join(cfg.WorkDir, r.Workload+"-"+r.Path)
	run := loadRun{
		fortio: cfg.Fortio, workload: r.Workload, qps: r.RequestedQPS, connections: cfg.Connections,
		duration: cfg.Duration, payload: cfg.Payload, target: p.target(r.Workload),
		jsonPath: base + ".json", logPath: base + ".log",
	}
	res, loadCPU, err := run.run(ctx)
	if err != nil {
		r.Error = err.Error()
		return
	}
	busyAfter, _ := machineBusy()
	echoAfter, _ := procstat.CPU(echo.PID())

	r.QPS = res.ActualQPS
	r.Requests = res.DurationHistogram.Count
	r.Errors = r.Requests - res.ok()
	ms := func(p float64) float64 { v, _ := res.percentile(p); return v * 1000 }
	h := res.DurationHistogram
	r.LatencyMs = Latency{P50: ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9), Avg: h.Avg * 1000, Max: h.Max * 1000}

	ours := loadCPU + (echoAfter - echoBefore)
	for i, m := range procs {
		after, err := procstat.Read(m.pid)
		if err != nil {
			r.Error = err.Error()
			return
		}
		cpu := after.CPU - before[i].CPU
		ours += cpu
		u := ProcUsage{Name: m.name, PID: m.pid, CPUSeconds: cpu.Seconds(),
			PeakRSSMiB: float64(after.Mem.Peak) / (1 << 20), PeakSinceStart: !reset[i],
			AnonRSSMiB: float64(after.Mem.Anon) / (1 << 20), FileRSSMiB: float64(after.Mem.File) / (1 << 20)}
		if r.Requests > 0 {
			u.CPUPer1000 = cpu.Seconds() / float64(r.Requests) * 1000
		}
		if cpu > 0 {
			u.RequestsPerCore = float64(r.Requests) / cpu.Seconds()
		}
		r.Procs = append(r.Procs, u)
	}
	if busy := busyAfter - busyBefore; busy > 0 {
		r.MachineCPUSeconds = busy.Seconds()
		r.OthersCPUPercent = max(0, (busy-ours).Seconds()) / (float64(runtime.NumCPU()) * float64(res.ActualDuration) / 1e9) * 100
	}
}

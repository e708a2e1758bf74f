package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"trellis.dev/trellis/bench/internal/child"
)

// echoServer is the fortio server every path ends at: HTTP echo, gRPC ping and TCP
// echo, on loopback ports of its own.
type echoServer struct {
	*child.Child
	http, grpc, tcp string // addresses
}

func startEchoServer(ctx context.Context, fortio, dir string) (*echoServer, error) {
	ports, err := child.FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &echoServer{http: child.Loopback(ports[0]), grpc: child.Loopback(ports[1]), tcp: child.Loopback(ports[2])}
	s.Child, err = child.Start("fortio server", filepath.Join(dir, "fortio-server.log"), []string{
		fortio, "server", "-http-port", s.http, "-grpc-port", s.grpc, "-tcp-port", s.tcp,
		"-redirect-port", "disabled", "-udp-port", "disabled", "-loglevel", "Warning", "-logger-json=false",
	}, nil)
	if err != nil {
		return nil, err
	}
	for _, addr := range []string{s.http, s.grpc, s.tcp} {
		if err := child.WaitDial(ctx, s.Child, addr); err != nil {
			s.Stop(5 * time.Second)
			return nil, err
		}
	}
	return s, nil
}

// target is where fortio sends one workload on one path.
type target struct {
	// dest is fortio's target: a URL (HTTP), host:port (gRPC) or tcp://host:port.
	dest string
	// host, when set, is sent as the Host header (HTTP) or :authority (gRPC), so a
	// sidecar's outbound listener can route the request.
	host string
}

// loadRun is one fortio load run.
type loadRun struct {
	fortio      string
	workload    string
	qps         int // 0: as fast as possible
	connections int
	duration    time.Duration
	payload     int
	target      target
	jsonPath    string
	logPath     string
}

// percentiles are the latency percentiles every run reports.
var percentiles = []float64{50, 90, 99, 99.9}

// args is fortio's command line for the run.
func (r loadRun) args() []string {
	args := []string{"load",
		"-qps", strconv.Itoa(r.qps), "-c", strconv.Itoa(r.connections), "-t", r.duration.String(),
		"-payload-size", strconv.Itoa(r.payload),
		// 10 µs histogram resolution: the default 1 ms would round sub-millisecond
		// latencies to whole buckets.
		"-r", "0.00001", "-p", "50,90,99,99.9",
		"-json", r.jsonPath, "-loglevel", "Warning", "-logger-json=false",
	}
	// -jitter varies each connection's pause between requests by up to 10 %, so the
	// connections drift apart as independent clients do; without it every connection
	// fires at the same instants (WorkloadLockstep). Istio's benchmark scripts pass it.
	if r.qps > 0 && r.workload != WorkloadLockstep {
		args = append(args, "-jitter")
	}
	if r.target.host != "" {
		args = append(args, "-H", "Host: "+r.target.host)
	}
	if r.workload == WorkloadGRPC {
		args = append(args, "-grpc", "-ping")
	}
	return append(args, r.target.dest)
}

// run runs fortio load and returns its parsed JSON result and the CPU time fortio
// itself used.
func (r loadRun) run(ctx context.Context) (*fortioResult, time.Duration, error) {
	// fortio stops by itself after the duration; the context is a safety net.
	ctx, cancel := context.WithTimeout(ctx, r.duration+time.Minute)
	defer cancel()
	logf, err := os.Create(r.logPath)
	if err != nil {
		return nil, 0, fmt.Errorf("running fortio load: %w", err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, r.fortio, r.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("running fortio load %s (log %s): %w", r.target.dest, r.logPath, err)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	data, err := os.ReadFile(r.jsonPath)
	if err != nil {
		return nil, cpu, fmt.Errorf("reading fortio's result: %w", err)
	}
	res, err := parseFortio(data)
	return res, cpu, err
}

// fortioResult is the part of fortio's JSON output the report uses.
type fortioResult struct {
	RunType           string
	ActualQPS         float64
	ActualDuration    int64 // ns
	DurationHistogram struct {
		Count       int64
		Min, Max    float64 // seconds
		Avg         float64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
	// RetCodes counts results by code: HTTP status ("200"), gRPC serving status
	// ("SERVING") or TCP outcome ("OK"); errors appear under other codes.
	RetCodes map[string]int64
}

func parseFortio(data []byte) (*fortioResult, error) {
	var r fortioResult
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding fortio's JSON result: %w", err)
	}
	return &r, nil
}

// ok is the number of successful calls: HTTP 200, gRPC SERVING, TCP OK.
func (r *fortioResult) ok() int64 {
	var n int64
	for code, c := range r.RetCodes {
		if code == "200" || strings.EqualFold(code, "SERVING") || code == "OK" {
			n += c
		}
	}
	return n
}

// percentile returns the p-th percentile in seconds, and whether fortio reported it.
func (r *fortioResult) percentile(p float64) (float64, bool) {
	for _, pv := range r.DurationHistogram.Percentiles {
		if pv.Percentile == p {
			return pv.Value, true
		}
	}
	return 0, false
}

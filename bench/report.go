package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is one benchmark run: what ran where, and what every path measured.
type Report struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	// Results has one entry per workload and path, in the order they ran.
	Results []Result `json:"results"`
	// Notes are what the reader must know: paths skipped and why, other load seen on
	// the machine.
	Notes   []string `json:"notes,omitempty"`
	GoBench *GoBench `json:"goBench,omitempty"`

	builtTrellis string // the trellis binary Run built, removed when it returns
}

// Machine describes where the run happened and with what.
type Machine struct {
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel,omitempty"`
	// LoadBefore and LoadAfter are /proc/loadavg before and after the load runs: a
	// load average above 0 before the run means other work shared the CPUs.
	LoadBefore string `json:"loadBefore,omitempty"`
	LoadAfter  string `json:"loadAfter,omitempty"`
	GoVersion  string `json:"goVersion"`
	Fortio     string `json:"fortio,omitempty"`
	HAProxy    string `json:"haproxy,omitempty"`
	Trellis    string `json:"trellis,omitempty"`
}

// Settings are the load settings of the run.
type Settings struct {
	Duration    string `json:"duration"`
	QPS         int    `json:"qps"`
	Connections int    `json:"connections"`
	// PayloadBytes is the request body; the echo server returns it, so it is also the
	// response body.
	PayloadBytes int `json:"payloadBytes"`
}

// Result is what one path measured under one workload.
type Result struct {
	Path     string `json:"path"`
	Workload string `json:"workload"`
	// Skipped says why the run did not happen ("mTLS: not yet available"); Error why
	// it failed. Both empty: measured.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
	// RequestedQPS is fortio's -qps; 0 means as fast as possible.
	RequestedQPS int     `json:"requestedQps"`
	QPS          float64 `json:"qps"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	// LatencyMs are fortio's latency percentiles, in milliseconds.
	LatencyMs Latency `json:"latencyMs"`
	// AddedMs and AddedRatio compare with the direct path under the same workload:
	// this path's latency minus direct's, and divided by direct's.
	AddedMs    *Latency `json:"addedMs,omitempty"`
	AddedRatio *Latency `json:"addedRatio,omitempty"`
	// Procs are the proxies of the path, each on its own.
	Procs []ProcUsage `json:"procs,omitempty"`
	// MachineCPUSeconds is the CPU time every CPU of the machine spent busy during the
	// run; OthersCPUPercent the part of the machine's capacity used by processes
	// outside the benchmark (not fortio, the echo server or the path's proxies): other
	// work sharing the machine.
	MachineCPUSeconds float64 `json:"machineCpuSeconds,omitempty"`
	OthersCPUPercent  float64 `json:"othersCpuPercent"`
}

func (r Result) measured() bool { return r.Skipped == "" && r.Error == "" }

// Latency holds latency statistics (or their differences), in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
	Avg  float64 `json:"avg"`
	Max  float64 `json:"max"`
}

func (l Latency) values() []float64 { return []float64{l.P50, l.P90, l.P99, l.P999} }

// ProcUsage is one proxy process's cost during a run.
type ProcUsage struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// CPUSeconds is the process's user+system time during the run (every thread).
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUPer1000 is CPUSeconds per 1000 requests.
	CPUPer1000 float64 `json:"cpuSecondsPer1000Requests"`
	// RequestsPerCore is the requests served per CPU-second of this process: its
	// throughput if it had one core to itself.
	RequestsPerCore float64 `json:"requestsPerCpuSecond"`
	// PeakRSSMiB is the peak resident set size during the run (VmHWM, reset before
	// the run when the kernel allows it, else since the process started).
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// PeakSinceStart is true when the peak could not be reset before the run.
	PeakSinceStart bool `json:"peakSinceStart,omitempty"`
	// AnonRSSMiB and FileRSSMiB split the RSS at the end of the run: anonymous pages
	// (heap, stacks) and file-backed pages (mostly the binary's own, shared by every
	// process mapping it and reclaimable).
	AnonRSSMiB float64 `json:"anonRssMiB"`
	FileRSSMiB float64 `json:"fileRssMiB"`
}

// compare fills AddedMs and AddedRatio of every measured non-direct result from the
// direct result of the same workload.
func (rep *Report) compare() {
	direct := map[string]Result{}
	for _, r := range rep.Results {
		if r.Path == PathDirect && r.measured() {
			direct[r.Workload] = r
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		d, ok := direct[r.Workload]
		if !ok || r.Path == PathDirect || !r.measured() {
			continue
		}
		add := func(a, b float64) float64 { return a - b }
		ratio := func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		}
		r.AddedMs = combine(r.LatencyMs, d.LatencyMs, add)
		r.AddedRatio = combine(r.LatencyMs, d.LatencyMs, ratio)
	}
}

func combine(a, b Latency, f func(a, b float64) float64) *Latency {
	return &Latency{P50: f(a.P50, b.P50), P90: f(a.P90, b.P90), P99: f(a.P99, b.P99), P999: f(a.P999, b.P999),
		Avg: f(a.Avg, b.Avg), Max: f(a.Max, b.Max)}
}

// workloadTitle describes a workload in the report.
func workloadTitle(w string, s Settings) string {
	switch w {
	case WorkloadHTTP:
		return fmt.Sprintf("HTTP/1.1: POST %d B, echoed back, %d req/s, %d connections (fortio -jitter)", s.PayloadBytes, s.QPS, s.Connections)
	case WorkloadLockstep:
		return fmt.Sprintf("HTTP/1.1 in lockstep: POST %d B, echoed back, %d req/s, %d connections sending at the same instants (no -jitter)", s.PayloadBytes, s.QPS, s.Connections)
	case WorkloadGRPC:
		return fmt.Sprintf("gRPC (HTTP/2): ping with %d B, echoed back, %d req/s, %d connections (fortio -jitter)", s.PayloadBytes, s.QPS, s.Connections)
	case WorkloadTCP:
		return fmt.Sprintf("TCP: %d B written and echoed, %d req/s, %d connections (fortio -jitter)", s.PayloadBytes, s.QPS, s.Connections)
	case WorkloadMax:
		return fmt.Sprintf("HTTP/1.1 max throughput: POST %d B, as fast as possible (-qps 0), %d connections", s.PayloadBytes, s.Connections)
	}
	return w
}

// WriteMarkdown writes the report as markdown tables.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Trellis benchmark, %s\n\n", rep.Started.UTC().Format("2006-01-02 15:04 MST"))
	m := rep.Machine
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, %s. Load average before: %s; after: %s.\n",
		m.CPUs, m.Kernel, m.GoVersion, orDash(m.LoadBefore), orDash(m.LoadAfter))
	fmt.Fprintf(&b, "Tools: fortio %s; %s; Trellis %s.\n", orDash(m.Fortio), orDash(m.HAProxy), orDash(m.Trellis))
	fmt.Fprintf(&b, "Settings: %s per run, %d connections, %d B payload each way; latencies in ms. \"Others' CPU\" is the share of the machine's CPU used during the run by processes outside the benchmark (other work on the machine).\n\n",
		rep.Settings.Duration, rep.Settings.Connections, rep.Settings.PayloadBytes)
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n")
	}
	for _, wl := range rep.workloads() {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", wl, workloadTitle(wl, rep.Settings))
		b.WriteString("| path | p50 | p90 | p99 | p99.9 | added p50 | added p90 | added p99 | added p99.9 | req/s | requests | errors | others' CPU |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range rep.Results {
			if r.Workload != wl {
				continue
			}
			if !r.measured() {
				fmt.Fprintf(&b, "| %s | %s ||||||||||||\n", r.Path, orStr(r.Skipped, "error: "+oneLine(r.Error)))
				continue
			}
			l := r.LatencyMs
			fmt.Fprintf(&b, "| %s | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %.0f | %d | %d | %.0f%% |\n",
				r.Path, l.P50, l.P90, l.P99, l.P999,
				added(r, func(l Latency) float64 { return l.P50 }), added(r, func(l Latency) float64 { return l.P90 }),
				added(r, func(l Latency) float64 { return l.P99 }), added(r, func(l Latency) float64 { return l.P999 }),
				r.QPS, r.Requests, r.Errors, r.OthersCPUPercent)
		}
		b.WriteString("\n")
	}
	rep.writeTargets(&b)
	hasProcs := false
	for _, r := range rep.Results {
		hasProcs = hasProcs || len(r.Procs) > 0
	}
	if hasProcs {
		b.WriteString("## Proxy cost\n\nEach proxy process alone, from /proc: CPU (user+system) per 1000 requests, requests per CPU-second, peak RSS during the run, and the RSS at the end of the run split into anonymous (heap, stacks) and file-backed pages (the binary's, shared and reclaimable).\n\n")
		b.WriteString("| workload | path | process | CPU s | CPU s / 1000 req | req / CPU-s | peak RSS MiB | RSS anon / file MiB |\n|---|---|---|--:|--:|--:|--:|--:|\n")
		for _, r := range rep.Results {
			for _, p := range r.Procs {
				star := ""
				if p.PeakSinceStart {
					star = " (since start)"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %.3f | %.0f | %.1f%s | %.1f / %.1f |\n",
					r.Workload, r.Path, p.Name, p.CPUSeconds, p.CPUPer1000, p.RequestsPerCore, p.PeakRSSMiB, star, p.AnonRSSMiB, p.FileRSSMiB)
			}
		}
		b.WriteString("\n")
	}
	if rep.GoBench != nil {
		rep.GoBench.writeMarkdown(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// workloads lists the workloads of the results, in run order.
func (rep *Report) workloads() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rep.Results {
		if !seen[r.Workload] {
			seen[r.Workload] = true
			out = append(out, r.Workload)
		}
	}
	return out
}

// added formats one added-latency cell: "+0.123 (1.5×)".
func added(r Result, f func(Latency) float64) string {
	if r.AddedMs == nil {
		return "—"
	}
	return fmt.Sprintf("%+.3f (%.1f×)", f(*r.AddedMs), f(*r.AddedRatio))
}

// oneLine keeps the first line of s, for a table cell.
func oneLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.ReplaceAll(line, "|", "/")
}

func orDash(s string) string { return orStr(s, "—") }

func orStr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// write stores the report as <name>.md, <name>.json and <name>.png in dir.
func (rep *Report) write(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if err := rep.writeChart(filepath.Join(dir, name+".png")); err != nil {
		return err
	}
	return nil
}

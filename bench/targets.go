package bench

import (
	"fmt"
	"strings"
)

// goal is one of issue 9's targets for two sidecars at 1000 req/s, 16
// connections, 1 KiB, HTTP/1.1 (the design targets mTLS on; until it is available
// they are checked on the plaintext mesh).
type goal struct {
	what  string
	limit float64
	unit  string
	// value extracts the measured value from the HTTP result of a Trellis path; ok
	// is false when it cannot.
	value func(r Result) (v float64, ok bool)
}

var goals = []goal{
	{what: "added p50 latency over direct", limit: 0.30, unit: "ms", value: func(r Result) (float64, bool) {
		if r.AddedMs == nil {
			return 0, false
		}
		return r.AddedMs.P50, true
	}},
	{what: "added p99 latency over direct", limit: 1.0, unit: "ms", value: func(r Result) (float64, bool) {
		if r.AddedMs == nil {
			return 0, false
		}
		return r.AddedMs.P99, true
	}},
	{what: "CPU per 1000 requests, busiest sidecar", limit: 0.10, unit: "CPU-s", value: func(r Result) (float64, bool) {
		return maxProc(r, func(p ProcUsage) float64 { return p.CPUPer1000 })
	}},
	{what: "peak RSS, largest sidecar", limit: 30, unit: "MiB", value: func(r Result) (float64, bool) {
		return maxProc(r, func(p ProcUsage) float64 { return p.PeakRSSMiB })
	}},
	{what: "errors", limit: 0, unit: "", value: func(r Result) (float64, bool) { return float64(r.Errors), true }},
}

func maxProc(r Result, f func(ProcUsage) float64) (float64, bool) {
	if len(r.Procs) == 0 {
		return 0, false
	}
	v := f(r.Procs[0])
	for _, p := range r.Procs[1:] {
		v = max(v, f(p))
	}
	return v, true
}

// writeTargets writes the targets table for the Trellis paths' HTTP results at the
// Istio setting, when the run used it.
func (rep *Report) writeTargets(b *strings.Builder) {
	s := rep.Settings
	if s.QPS != 1000 || s.Connections != 16 || s.PayloadBytes != 1024 {
		return
	}
	var rows []Result
	for _, r := range rep.Results {
		if r.Workload == WorkloadHTTP && (r.Path == PathTrellis || r.Path == PathTrellisMTLS) && r.measured() {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Targets (issue 9), HTTP/1.1 at 1000 req/s, 16 connections, 1 KiB\n\n| path | target | limit | measured | met |\n|---|---|--:|--:|---|\n")
	for _, r := range rows {
		for _, g := range goals {
			v, ok := g.value(r)
			if !ok {
				continue
			}
			met := "yes"
			if v > g.limit {
				met = "no"
			}
			fmt.Fprintf(b, "| %s | %s | %g %s | %.3f %s | %s |\n", r.Path, g.what, g.limit, g.unit, v, g.unit, met)
		}
	}
	b.WriteString("\n")
}

package xdsload

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Report is the result of a control-plane load run.
type Report struct {
	Started     time.Time   `json:"started"`
	Finished    time.Time   `json:"finished"`
	Services    int         `json:"services"`
	Namespaces  int         `json:"namespaces"`
	ConnectRate int         `json:"connectRate"`
	Quiet       string      `json:"quiet"`
	Runs        []RunResult `json:"runs"`
	// Notes are what the reader must know, such as other work on the machine.
	Notes []string `json:"notes,omitempty"`
}

// RunResult is one run: a number of proxies against a fresh control plane.
type RunResult struct {
	Proxies  int `json:"proxies"`
	Services int `json:"services"`
	// Scoping is ScopingSidecar or ScopingNone.
	Scoping string `json:"scoping"`
	Error   string `json:"error,omitempty"`
	Ramp    Ramp   `json:"ramp"`
	// Changes are the changes, in order; Summary aggregates them by kind.
	Changes []Change  `json:"changes"`
	Summary []Summary `json:"summary"`
	// ControlPlane is the control plane's total cost over the run.
	ControlPlane ControlPlaneUsage `json:"controlPlane"`
	// LoadGeneratorCPUSeconds is the CPU time the simulated proxies used, on the
	// same machine.
	LoadGeneratorCPUSeconds float64 `json:"loadGeneratorCpuSeconds"`
	// LoadGeneratorPeakRSSMiB is the load generator's peak RSS since it started.
	LoadGeneratorPeakRSSMiB float64 `json:"loadGeneratorPeakRssMiB"`
	StreamFailures          int     `json:"streamFailures,omitempty"`
	// LoadAverage is the machine's 1-minute load average at the start and at the
	// end of the run (/proc/loadavg): what else competed for the CPUs.
	LoadAverage [2]float64 `json:"loadAverage"`
}

// Ramp is the proxies' arrival.
type Ramp struct {
	// ConnectSeconds is how long starting every proxy took (the connect rate);
	// ConfiguredSeconds is from the first proxy's start until the last response of the
	// ramp (every proxy configured, the control plane caught up).
	ConnectSeconds    float64 `json:"connectSeconds"`
	ConfiguredSeconds float64 `json:"configuredSeconds"`
	// Configured is how many proxies had their configuration when the ramp ended
	// (all of them, unless the run stopped early).
	Configured int `json:"configured"`
	// ControlPlaneRSSMiB is the control plane's RSS at the end of the ramp.
	ControlPlaneRSSMiB     float64 `json:"controlPlaneRssMiB"`
	ControlPlaneCPUSeconds float64 `json:"controlPlaneCpuSeconds"`
	Bytes                  int64   `json:"bytes"`
	Responses              int64   `json:"responses"`
}

// Change is one measured change.
type Change struct {
	Kind  string `json:"kind"`
	Index int    `json:"index"`
	// Proxies is how many proxies had to ACK; Acked how many did.
	Proxies int `json:"proxies"`
	Acked   int `json:"acked"`
	// P50Ms, P99Ms and MaxMs are over the proxies' latencies, from the change until
	// the proxy ACKed it.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	// Bytes and Responses are what all proxies received for the change.
	Bytes                  int64   `json:"bytes"`
	Responses              int64   `json:"responses"`
	ControlPlaneCPUSeconds float64 `json:"controlPlaneCpuSeconds"`
	// ControlPlaneRSSMiB is the control plane's RSS once the change is done.
	ControlPlaneRSSMiB float64 `json:"controlPlaneRssMiB"`
	// Translations is how many translations the control plane made for the
	// change; TranslateMs their mean duration (model, generation and push) and
	// PushMs that of their pushes (from its trellis_translation_duration_seconds and
	// trellis_xds_push_duration_seconds).
	Translations int     `json:"translations"`
	TranslateMs  float64 `json:"translateMs"`
	PushMs       float64 `json:"pushMs"`
	Note         string  `json:"note,omitempty"`
}

// Summary aggregates the changes of one kind: the median over the changes of each
// number.
type Summary struct {
	Kind                   string  `json:"kind"`
	Changes                int     `json:"changes"`
	P50Ms                  float64 `json:"p50Ms"`
	P99Ms                  float64 `json:"p99Ms"`
	MaxMs                  float64 `json:"maxMs"`
	BytesPerChange         float64 `json:"bytesPerChange"`
	BytesPerProxy          float64 `json:"bytesPerProxyPerChange"`
	ResponsesPerChange     float64 `json:"responsesPerChange"`
	ControlPlaneCPUSeconds float64 `json:"controlPlaneCpuSecondsPerChange"`
	TranslateMs            float64 `json:"translateMs"`
	PushMs                 float64 `json:"pushMs"`
}

// ControlPlaneUsage is the control plane's cost over a run.
type ControlPlaneUsage struct {
	CPUSeconds float64 `json:"cpuSeconds"`
	RSSMiB     float64 `json:"rssMiB"`
	PeakRSSMiB float64 `json:"peakRssMiB"`
}

func (r *RunResult) summarize() {
	for _, kind := range []string{KindService, KindEndpoint} {
		var cs []Change
		for _, c := range r.Changes {
			if c.Kind == kind {
				cs = append(cs, c)
			}
		}
		if len(cs) == 0 {
			continue
		}
		med := func(f func(Change) float64) float64 {
			vs := make([]float64, len(cs))
			for i, c := range cs {
				vs[i] = f(c)
			}
			return median(vs)
		}
		s := Summary{Kind: kind, Changes: len(cs),
			P50Ms:                  med(func(c Change) float64 { return c.P50Ms }),
			P99Ms:                  med(func(c Change) float64 { return c.P99Ms }),
			MaxMs:                  med(func(c Change) float64 { return c.MaxMs }),
			BytesPerChange:         med(func(c Change) float64 { return float64(c.Bytes) }),
			ResponsesPerChange:     med(func(c Change) float64 { return float64(c.Responses) }),
			ControlPlaneCPUSeconds: med(func(c Change) float64 { return c.ControlPlaneCPUSeconds }),
			TranslateMs:            med(func(c Change) float64 { return c.TranslateMs }),
			PushMs:                 med(func(c Change) float64 { return c.PushMs }),
		}
		if cs[0].Proxies > 0 {
			s.BytesPerProxy = s.BytesPerChange / float64(cs[0].Proxies)
		}
		r.Summary = append(r.Summary, s)
	}
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteMarkdown writes the report as markdown tables.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Trellis control plane at scale, %s\n\n", rep.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "%d services (v1/Service documents, one HTTP port each) dealt over %d namespaces; simulated proxies on Delta ADS, connecting at %d/s, each an endpoint of one service. "+
		"Scoping \"sidecar\": every namespace has a Sidecar with egress hosts `./*` and `%s/*` (its own services and the shared namespace's); \"none\": every proxy sees every service. "+
		"Both changes concern the shared namespace, so every proxy must receive them: \"service\" adds a Service to it, \"endpoint\" connects one more proxy of its svc-0000. "+
		"A change is done when every proxy has ACKed it; \"quiet\" is %s without a response.\n\n",
		rep.Services, rep.Namespaces, rep.ConnectRate, sharedNamespace, rep.Quiet)
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| proxies | scoping | change | changes | p50 ms | p99 ms | max ms | bytes / change | bytes / proxy | responses / change | control-plane CPU s / change | translate ms (push ms) |\n")
	b.WriteString("|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.Runs {
		for _, s := range r.Summary {
			fmt.Fprintf(&b, "| %d | %s | %s | %d | %.0f | %.0f | %.0f | %s | %s | %.0f | %.2f | %.0f (%.0f) |\n", r.Proxies, r.Scoping, s.Kind, s.Changes,
				s.P50Ms, s.P99Ms, s.MaxMs, size(s.BytesPerChange), size(s.BytesPerProxy), s.ResponsesPerChange, s.ControlPlaneCPUSeconds,
				s.TranslateMs, s.PushMs)
		}
	}
	b.WriteString("\n| proxies | scoping | ramp: configured | ramp: last response s | ramp: control-plane CPU s | ramp bytes | control-plane RSS MiB after ramp | control-plane CPU s (run) | control-plane RSS MiB (end / peak) | load generator CPU s | load average (start / end) | error |\n")
	b.WriteString("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, r := range rep.Runs {
		fmt.Fprintf(&b, "| %d | %s | %d | %.1f | %.1f | %s | %.0f | %.1f | %.0f / %.0f | %.1f | %.1f / %.1f | %s |\n", r.Proxies, r.Scoping, r.Ramp.Configured,
			r.Ramp.ConfiguredSeconds, r.Ramp.ControlPlaneCPUSeconds, size(float64(r.Ramp.Bytes)), r.Ramp.ControlPlaneRSSMiB,
			r.ControlPlane.CPUSeconds, r.ControlPlane.RSSMiB, r.ControlPlane.PeakRSSMiB, r.LoadGeneratorCPUSeconds,
			r.LoadAverage[0], r.LoadAverage[1], strings.ReplaceAll(strings.ReplaceAll(r.Error, "\n", " "), "|", "/"))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// size formats a byte count: 1.2 MB, 340 kB, 512 B.
func size(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f GB", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f MB", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0f kB", v/1e3)
	}
	return fmt.Sprintf("%.0f B", v)
}

// Write stores the report as <name>.md and <name>.json in dir.
func (rep *Report) Write(dir, name string) error {
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
	return nil
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/bench/xdsload"
)

// TestBenchSmoke runs the whole harness for two seconds per run at a low rate, so that
// it cannot rot. It checks that every path ran and that the report was written; it
// asserts nothing about latency or throughput: benchmarks are not timed tests.
func TestBenchSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := t.TempDir()
	var printed bytes.Buffer
	rep, err := Run(ctx, Config{
		Duration: 2 * time.Second, QPS: 100, Connections: 2,
		Trellis: trellisBin, OutDir: out, Name: "smoke", Out: &printed,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, ext := range []string{".md", ".json", ".png"} {
		fi, err := os.Stat(filepath.Join(out, "smoke"+ext))
		if err != nil || fi.Size() == 0 {
			t.Errorf("report file smoke%s: missing or empty (%v)", ext, err)
		}
	}
	png, _ := os.ReadFile(filepath.Join(out, "smoke.png"))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("smoke.png is not a PNG")
	}
	var fromJSON Report
	data, _ := os.ReadFile(filepath.Join(out, "smoke.json"))
	if err := json.Unmarshal(data, &fromJSON); err != nil {
		t.Fatalf("decoding smoke.json: %v", err)
	}
	if diff := cmp.Diff(len(WorkloadNames)*len(PathNames), len(fromJSON.Results)); diff != "" {
		t.Errorf("results in smoke.json (-want +got):\n%s", diff)
	}
	if !strings.Contains(printed.String(), "| direct |") {
		t.Errorf("the printed report has no table:\n%s", printed.String())
	}

	for _, r := range rep.Results {
		t.Logf("%-8s %-12s requests=%d errors=%d p50=%.3fms skipped=%q error=%q",
			r.Workload, r.Path, r.Requests, r.Errors, r.LatencyMs.P50, r.Skipped, r.Error)
		switch {
		case r.Path == PathTrellisMTLS && !MTLSAvailable:
			if r.Skipped != "mTLS: not yet available" {
				t.Errorf("%s/%s: skipped = %q, want mTLS: not yet available", r.Workload, r.Path, r.Skipped)
			}
		case r.Path == PathHAProxy && rep.Machine.HAProxy == "":
			t.Logf("haproxy is not installed; its path is skipped (.ci/run installs it)")
		default:
			if r.Error != "" || r.Skipped != "" {
				t.Errorf("%s/%s did not run: error %q, skipped %q", r.Workload, r.Path, r.Error, r.Skipped)
				continue
			}
			if r.Requests == 0 {
				t.Errorf("%s/%s: no request was made", r.Workload, r.Path)
			}
			if r.Path != PathDirect && len(r.Procs) == 0 {
				t.Errorf("%s/%s: no proxy process was measured", r.Workload, r.Path)
			}
			for _, p := range r.Procs {
				if p.PeakRSSMiB <= 0 || p.AnonRSSMiB <= 0 {
					t.Errorf("%s/%s: %s has no peak or anonymous RSS", r.Workload, r.Path, p.Name)
				}
			}
		}
	}
}

// TestXDSLoadSmoke runs the control-plane load program with 50 proxies in 5
// namespaces scoped by Sidecars, one change of each kind. It checks that every proxy
// ACKed every change, not how fast.
func TestXDSLoadSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := xdsload.Run(ctx, xdsload.Config{
		Trellis: trellisBin, Proxies: []int{50}, Services: 20, Namespaces: 5, Changes: 1,
		ConnectRate: 200, ChangeTimeout: time.Minute, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatalf("xdsload.Run: %v", err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("runs = %d, want 1", len(rep.Runs))
	}
	r := rep.Runs[0]
	if r.Error != "" {
		t.Fatalf("run failed: %s", r.Error)
	}
	if r.Ramp.Configured != 50 {
		t.Errorf("ramp: %d proxies configured, want 50", r.Ramp.Configured)
	}
	var kinds []string
	for _, c := range r.Changes {
		kinds = append(kinds, c.Kind)
		if c.Acked != c.Proxies || c.Bytes == 0 {
			t.Errorf("change %d (%s): %d of %d proxies ACKed, %d bytes", c.Index, c.Kind, c.Acked, c.Proxies, c.Bytes)
		}
	}
	if diff := cmp.Diff([]string{xdsload.KindService, xdsload.KindEndpoint}, kinds); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	dir := t.TempDir()
	if err := rep.Write(dir, "xds"); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "xds.md"))
	if !strings.Contains(string(md), "| 50 | sidecar | service |") {
		t.Errorf("xds.md has no row for the service change:\n%s", md)
	}
}

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// GoBench is the result of the Go benchmarks of the per-request steps
// (go test -bench -benchmem).
type GoBench struct {
	Command    string        `json:"command"`
	Benchmarks []GoBenchmark `json:"benchmarks"`
	// Failed lists the packages whose tests did not build or whose benchmarks failed;
	// Error says why the command as a whole failed, if it did.
	Failed []string `json:"failed,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Refreshed, when set, is when the Go benchmarks were run again alone
	// (RefreshGoBench), after the load runs of the report.
	Refreshed time.Time `json:"refreshed,omitzero"`
}

// GoBenchmark is one benchmark line.
type GoBenchmark struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	Iterations  int64   `json:"iterations"`
	NsPerOp     float64 `json:"nsPerOp"`
	BytesPerOp  float64 `json:"bytesPerOp"`
	AllocsPerOp float64 `json:"allocsPerOp"`
	// Extra holds custom metrics (b.ReportMetric), by unit.
	Extra map[string]float64 `json:"extra,omitempty"`
}

// goBenchTimeout bounds the Go benchmarks, compilation included.
const goBenchTimeout = 20 * time.Minute

// runGoBench runs the Go benchmarks of pkgs in dir, one package at a time (-p 1) so
// that they do not compete for the CPUs, and parses their output. The raw output is
// kept in logPath.
func runGoBench(ctx context.Context, dir string, pkgs []string, logPath string) *GoBench {
	ctx, cancel := context.WithTimeout(ctx, goBenchTimeout)
	defer cancel()
	// Compile only the packages that have benchmarks: the others would only cost time.
	withBench, err := benchPackages(ctx, dir, pkgs)
	if err != nil {
		withBench = pkgs
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "-p", "1"}, withBench...)
	gb := &GoBench{Command: "go " + strings.Join(args, " ")}
	if len(withBench) == 0 {
		gb.Error = "no package of " + strings.Join(pkgs, " ") + " has a benchmark"
		return gb
	}
	logf, err := os.Create(logPath)
	if err != nil {
		gb.Error = err.Error()
		return gb
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		gb.Error = err.Error()
		return gb
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		gb.Error = fmt.Sprintf("running %s: %v", gb.Command, err)
		return gb
	}
	parsed := parseGoBench(io.TeeReader(out, logf))
	gb.Benchmarks, gb.Failed = parsed.Benchmarks, parsed.Failed
	if err := cmd.Wait(); err != nil {
		gb.Error = fmt.Sprintf("%s: %v (output in %s)", gb.Command, err, logPath)
	}
	return gb
}

// parseGoBench reads `go test -bench` output: "pkg:" lines name the package of the
// benchmark lines that follow; "FAIL" lines name failed packages.
func parseGoBench(r io.Reader) *GoBench {
	gb := &GoBench{}
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "FAIL\t"):
			f := strings.Fields(line)
			if len(f) >= 2 {
				gb.Failed = append(gb.Failed, f[1])
			}
		case strings.HasPrefix(line, "Benchmark"):
			if b, ok := parseBenchLine(line); ok {
				b.Package = pkg
				gb.Benchmarks = append(gb.Benchmarks, b)
			}
		}
	}
	return gb
}

// parseBenchLine parses "BenchmarkX-2  1000  123 ns/op  16 B/op  1 allocs/op".
func parseBenchLine(line string) (GoBenchmark, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 {
		return GoBenchmark{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return GoBenchmark{}, false
	}
	b := GoBenchmark{Name: f[0], Iterations: n}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return GoBenchmark{}, false
		}
		switch unit := f[i+1]; unit {
		case "ns/op":
			b.NsPerOp = v
		case "B/op":
			b.BytesPerOp = v
		case "allocs/op":
			b.AllocsPerOp = v
		default:
			if b.Extra == nil {
				b.Extra = map[string]float64{}
			}
			b.Extra[unit] = v
		}
	}
	return b, true
}

func (gb *GoBench) writeMarkdown(b *strings.Builder) {
	fmt.Fprintf(b, "## Go benchmarks of the per-request steps\n\n`%s`\n\n", gb.Command)
	if !gb.Refreshed.IsZero() {
		fmt.Fprintf(b, "Run again alone on %s, after the load runs above.\n\n", gb.Refreshed.UTC().Format("2006-01-02 15:04 MST"))
	}
	if gb.Error != "" {
		fmt.Fprintf(b, "The command failed: %s\n\n", gb.Error)
	}
	if len(gb.Failed) > 0 {
		fmt.Fprintf(b, "Packages that failed (not built, or a benchmark failed): %s\n\n", strings.Join(gb.Failed, ", "))
	}
	if len(gb.Benchmarks) == 0 {
		b.WriteString("No benchmark ran.\n\n")
		return
	}
	b.WriteString("| package | benchmark | ns/op | B/op | allocs/op |\n|---|---|--:|--:|--:|\n")
	for _, bm := range gb.Benchmarks {
		fmt.Fprintf(b, "| %s | %s | %.1f | %.0f | %.0f |\n",
			strings.TrimPrefix(bm.Package, "trellis.dev/trellis/"), bm.Name, bm.NsPerOp, bm.BytesPerOp, bm.AllocsPerOp)
	}
	b.WriteString("\n")
}

// benchPackages lists the packages matching pkgs that have a Benchmark function in a
// test file.
func benchPackages(ctx context.Context, dir string, pkgs []string) ([]string, error) {
	args := append([]string{"list", "-e", "-f",
		`{{.ImportPath}}{{range .TestGoFiles}} {{$.Dir}}/{{.}}{{end}}{{range .XTestGoFiles}} {{$.Dir}}/{{.}}{{end}}`}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing packages: %w", err)
	}
	var found []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, file := range f[min(1, len(f)):] {
			data, err := os.ReadFile(file)
			if err == nil && strings.Contains(string(data), "\nfunc Benchmark") {
				found = append(found, f[0])
				break
			}
		}
	}
	return found, nil
}

// RefreshGoBench runs only the Go benchmarks and replaces them in the report already
// in cfg.OutDir (<Name>.json), rewriting its markdown, JSON and chart: for when the
// tree did not build during the full run, without running the load again.
func RefreshGoBench(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(cfg.OutDir, cfg.Name+".json"))
	if err != nil {
		return nil, fmt.Errorf("reading the report to refresh: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("decoding the report to refresh: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the work directory: %w", err)
	}
	rep.GoBench = runGoBench(ctx, cfg.ModuleDir, cfg.GoBenchPackages, filepath.Join(cfg.WorkDir, "gobench.txt"))
	rep.GoBench.Refreshed = time.Now()
	if err := rep.write(cfg.OutDir, cfg.Name); err != nil {
		return &rep, err
	}
	return &rep, rep.WriteMarkdown(cfg.Out)
}

package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: trellis.dev/trellis/internal/lb
cpu: AMD EPYC
BenchmarkRoundRobin-2   	37845612	        31.52 ns/op	       0 B/op	       0 allocs/op
BenchmarkRingHash/100-2 	 1000000	      1023 ns/op	      64 B/op	       2 allocs/op	        12.0 probes/op
PASS
ok  	trellis.dev/trellis/internal/lb	3.1s
# trellis.dev/trellis/internal/model
internal/model/build.go:51:9: undefined: Unsupported
FAIL	trellis.dev/trellis/internal/model [build failed]
`
	want := &GoBench{
		Benchmarks: []GoBenchmark{
			{Package: "trellis.dev/trellis/internal/lb", Name: "BenchmarkRoundRobin-2", Iterations: 37845612, NsPerOp: 31.52},
			{Package: "trellis.dev/trellis/internal/lb", Name: "BenchmarkRingHash/100-2", Iterations: 1000000, NsPerOp: 1023,
				BytesPerOp: 64, AllocsPerOp: 2, Extra: map[string]float64{"probes/op": 12}},
		},
		Failed: []string{"trellis.dev/trellis/internal/model"},
	}
	if diff := cmp.Diff(want, parseGoBench(strings.NewReader(out))); diff != "" {
		t.Errorf("parseGoBench (-want +got):\n%s", diff)
	}
}

func TestFortioResult(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantOK  int64
		wantP99 float64
	}{
		{
			name:    "http",
			json:    `{"RetCodes":{"200":990,"-1":10},"DurationHistogram":{"Count":1000,"Percentiles":[{"Percentile":50,"Value":0.0002},{"Percentile":99,"Value":0.0011}]}}`,
			wantOK:  990,
			wantP99: 0.0011,
		},
		{name: "grpc", json: `{"RetCodes":{"SERVING":500}}`, wantOK: 500},
		{name: "tcp", json: `{"RetCodes":{"OK":7,"EOF":1}}`, wantOK: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseFortio([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			p99, _ := r.percentile(99)
			if diff := cmp.Diff([]float64{float64(tt.wantOK), tt.wantP99}, []float64{float64(r.ok()), p99}); diff != "" {
				t.Errorf("ok, p99 (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMeshFileMTLSSwitch(t *testing.T) {
	tests := []struct {
		name string
		mtls bool
		want string // the mode of the mesh's PeerAuthentication
	}{
		{name: "plaintext", mtls: false, want: "DISABLE"},
		{name: "mtls", mtls: true, want: "STRICT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mesh, err := meshFile(meshParams{HTTPPort: 1, GRPCPort: 2, TCPPort: 3, Outbound: "127.0.0.1:4", Upstream: "127.0.0.1:5", MTLS: tt.mtls})
			if err != nil {
				t.Fatal(err)
			}
			_, pa, ok := strings.Cut(string(mesh), "kind: PeerAuthentication")
			if !ok {
				t.Fatalf("no PeerAuthentication in the mesh (without one, auto mTLS decides):\n%s", mesh)
			}
			if !strings.Contains(pa, "mode: "+tt.want+"}") || strings.Count(string(mesh), "mode: ") != 1 {
				t.Errorf("want one PeerAuthentication in mode %s:\n%s", tt.want, mesh)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	rep := &Report{Results: []Result{
		{Path: PathDirect, Workload: WorkloadHTTP, LatencyMs: Latency{P50: 0.2, P90: 0.4, P99: 1, P999: 2}},
		{Path: PathTrellis, Workload: WorkloadHTTP, LatencyMs: Latency{P50: 0.5, P90: 0.8, P99: 2, P999: 3}},
		{Path: PathTrellisMTLS, Workload: WorkloadHTTP, Skipped: "mTLS: not yet available"},
	}}
	rep.compare()
	want := &Latency{P50: 0.3, P90: 0.4, P99: 1, P999: 1}
	if diff := cmp.Diff(want, rep.Results[1].AddedMs, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
		t.Errorf("added latency (-want +got):\n%s", diff)
	}
	if rep.Results[2].AddedMs != nil || rep.Results[0].AddedMs != nil {
		t.Errorf("added latency set on direct or a skipped path")
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| trellis-mtls | mTLS: not yet available |") {
		t.Errorf("markdown does not show the skipped path:\n%s", md.String())
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "linked"), filepath.Join(dir, "copy")
	data := bytes.Repeat([]byte("trellis"), 100000) // several copy buffers
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(dst, src); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy differs from the original (%d of %d bytes, %v)", len(got), len(data), err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("copy mode %v, want executable", fi.Mode())
	}
	if err := copyFile(dst, src); err == nil {
		t.Error("copying over an existing file: no error")
	}
}

// TestFortioPacing checks which runs pace with -jitter: the fixed-rate workloads do,
// the lockstep workload and the as-fast-as-possible run do not.
func TestFortioPacing(t *testing.T) {
	tests := []struct {
		name     string
		workload string
		qps      int
		jitter   bool
	}{
		{name: "http", workload: WorkloadHTTP, qps: 1000, jitter: true},
		{name: "grpc", workload: WorkloadGRPC, qps: 1000, jitter: true},
		{name: "tcp", workload: WorkloadTCP, qps: 1000, jitter: true},
		{name: "lockstep", workload: WorkloadLockstep, qps: 1000, jitter: false},
		{name: "max", workload: WorkloadMax, qps: 0, jitter: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loadRun{workload: tt.workload, qps: tt.qps, connections: 16, duration: time.Second, payload: 1024,
				target: target{dest: "http://127.0.0.1:1/echo"}}
			if got := slices.Contains(r.args(), "-jitter"); got != tt.jitter {
				t.Errorf("-jitter in %v: %v, want %v", r.args(), got, tt.jitter)
			}
		})
	}
}

// TestEvictPageCache checks that evictPageCache leaves a file's contents intact and
// its pages out of the page cache (mincore of a mapping of it).
func TestEvictPageCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bin")
	data := bytes.Repeat([]byte("trellis!"), 1<<17) // 1 MiB
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := evictPageCache(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(data)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident > len(vec)/4 {
		t.Errorf("%d of %d pages still in the page cache after evictPageCache", resident, len(vec))
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Error("the file's contents changed")
	}
}

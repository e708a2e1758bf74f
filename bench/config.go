package bench

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Config configures one benchmark run. The zero value of every field is Istio's
// published setting, on every path and workload.
type Config struct {
	// Duration is how long each load run lasts. Default 30s.
	Duration time.Duration
	// QPS is the request rate of the fixed-rate runs. Default 1000.
	QPS int
	// Connections is fortio's number of connections (-c). Default 16.
	Connections int
	// Payload is the request body size in bytes (-payload-size); the fortio echo
	// server sends it back, so a 1 KiB request gets a 1 KiB response. Default 1024.
	Payload int
	// Workloads are the kinds of load to run, from WorkloadNames. Default all.
	Workloads []string
	// Paths are the paths to measure, from PathNames. Default all. "direct" always
	// runs: the other paths are compared with it.
	Paths []string

	// Trellis is the trellis binary. Empty: built from ModuleDir into WorkDir.
	Trellis string
	// Fortio is the fortio binary. Empty: fortio in PATH, else in $(go env GOPATH)/bin.
	Fortio string
	// HAProxy is the haproxy binary. Empty: haproxy in PATH, else /usr/sbin/haproxy.
	// When none is found the haproxy path is skipped with a note.
	HAProxy string
	// ModuleDir is the root of the Trellis module, where trellis is built and the Go
	// benchmarks run. Empty: found with `go env GOMOD` from the current directory.
	ModuleDir string

	// TryMTLS runs the trellis-mtls path although MTLSAvailable is false: for the
	// engineer bringing mutual TLS up, before the path is declared available.
	TryMTLS bool

	// GoBench runs the Go benchmarks (go test -bench) of GoBenchPackages and adds
	// them to the report.
	GoBench bool
	// GoBenchPackages are the packages of the Go benchmarks. Default ./internal/...
	GoBenchPackages []string

	// OutDir receives <Name>.md, <Name>.json and <Name>.png. Default bench/results
	// under ModuleDir.
	OutDir string
	// Name is the base name of the result files. Default "latest".
	Name string
	// WorkDir holds the runs' raw files: fortio's JSON, the mesh and HAProxy
	// configuration, the processes' logs. Default OutDir/tmp/<Name>.
	WorkDir string

	// Logger receives progress records. Default: discard.
	Logger *slog.Logger
	// Out receives the printed table. Default: os.Stdout.
	Out io.Writer
}

// The workloads: what fortio sends, and at which rate.
const (
	// WorkloadHTTP is HTTP/1.1 POSTs of Payload bytes, echoed back, at QPS.
	WorkloadHTTP = "http"
	// WorkloadGRPC is gRPC pings (HTTP/2) carrying Payload bytes, at QPS.
	WorkloadGRPC = "grpc"
	// WorkloadTCP is Payload bytes written and echoed on plain TCP connections, at QPS.
	WorkloadTCP = "tcp"
	// WorkloadMax is WorkloadHTTP as fast as it goes (-qps 0): the maximum throughput.
	WorkloadMax = "http-max"
	// WorkloadLockstep is WorkloadHTTP without fortio's -jitter: every connection
	// sends at the same instants, so each sidecar gets Connections requests at once
	// every Connections/QPS seconds (16 every 16 ms). It shows how a path absorbs a
	// burst; the fixed-rate workloads above send with -jitter, as Istio's benchmark
	// scripts do, and the targets are read from WorkloadHTTP.
	WorkloadLockstep = "http-lockstep"
)

// WorkloadNames lists every workload, in the order they run.
var WorkloadNames = []string{WorkloadHTTP, WorkloadGRPC, WorkloadTCP, WorkloadMax, WorkloadLockstep}

// The paths: how the load reaches the fortio server.
const (
	// PathDirect is fortio load straight to the fortio server: the limit.
	PathDirect = "direct"
	// PathHAProxy is one HAProxy hop, the reference for a good proxy.
	PathHAProxy = "haproxy"
	// PathTrellis is two Trellis sidecars, client and server, plaintext between them.
	PathTrellis = "trellis"
	// PathTrellisMTLS is two Trellis sidecars with mutual TLS between them.
	PathTrellisMTLS = "trellis-mtls"
	// PathTrellisH2 is PathTrellis with the HTTP/1.1 requests carried between the
	// sidecars over one multiplexed HTTP/2 (h2c) connection: a DestinationRule with
	// connectionPool.http.h2UpgradePolicy UPGRADE (docs/traffic.md).
	PathTrellisH2 = "trellis-h2"
)

// PathNames lists every path, in the order they run and are reported.
var PathNames = []string{PathDirect, PathHAProxy, PathTrellis, PathTrellisMTLS, PathTrellisH2}

// MTLSAvailable reports whether Trellis can run the mesh with mutual TLS between the
// sidecars (it can since issue 4: the trellis-mtls path runs with a STRICT
// PeerAuthentication, see meshFile). False reports the path as "mTLS: not yet
// available" rather than measuring it.
const MTLSAvailable = true

func (c *Config) setDefaults() error {
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.QPS <= 0 {
		c.QPS = 1000
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	if c.Payload <= 0 {
		c.Payload = 1024
	}
	if len(c.Workloads) == 0 {
		c.Workloads = WorkloadNames
	}
	if len(c.Paths) == 0 {
		c.Paths = PathNames
	}
	for _, w := range c.Workloads {
		if !slices.Contains(WorkloadNames, w) {
			return fmt.Errorf("unknown workload %q: want one of %s", w, strings.Join(WorkloadNames, ", "))
		}
	}
	for _, p := range c.Paths {
		if !slices.Contains(PathNames, p) {
			return fmt.Errorf("unknown path %q: want one of %s", p, strings.Join(PathNames, ", "))
		}
	}
	if !slices.Contains(c.Paths, PathDirect) {
		c.Paths = append([]string{PathDirect}, c.Paths...)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.ModuleDir == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			return fmt.Errorf("finding the Trellis module (go env GOMOD): run from inside it or set the module directory")
		}
		c.ModuleDir = filepath.Dir(strings.TrimSpace(string(out)))
	}
	if len(c.GoBenchPackages) == 0 {
		c.GoBenchPackages = []string{"./internal/..."}
	}
	if c.OutDir == "" {
		c.OutDir = filepath.Join(c.ModuleDir, "bench", "results")
	}
	if c.Name == "" {
		c.Name = "latest"
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(c.OutDir, "tmp", c.Name)
	}
	if c.Fortio == "" {
		p, err := findFortio()
		if err != nil {
			return err
		}
		c.Fortio = p
	}
	if c.HAProxy == "" {
		for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
			if found, err := exec.LookPath(p); err == nil {
				c.HAProxy = found
				break
			}
		}
	}
	return nil
}

// findFortio looks for fortio in PATH, then in $(go env GOPATH)/bin.
func findFortio() (string, error) {
	if p, err := exec.LookPath("fortio"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "fortio")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("fortio not found in PATH or $(go env GOPATH)/bin: install it with `go install fortio.org/fortio@v1.66.5` (make fortio does)")
}

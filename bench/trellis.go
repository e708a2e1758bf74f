package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"trellis.dev/trellis/bench/internal/child"
)

// trellisPath is a `trellis up` mesh of two workloads: "echo", whose ports lead to the
// harness's echo server, and "client", a client-only workload whose sidecar receives
// the load on its outbound listener (HTTP and gRPC, routed by Host) and on a TCP
// upstream bind. A request crosses the client sidecar, then the echo sidecar.
type trellisPath struct {
	*child.Child
	state upState
	// outbound and upstream are the client sidecar's listeners.
	outbound, upstream string
}

// upState is the part of `trellis up --state` (internal/local.State) the harness
// reads. It is decoded here rather than imported, so the harness builds on its own.
type upState struct {
	Workloads []struct {
		Name     string `json:"name"`
		ProxyPID int    `json:"proxyPid"`
		// Metrics is the sidecar's metrics address (/stats/prometheus).
		Metrics string `json:"metrics"`
	} `json:"workloads"`
}

// meshParams fill meshTemplate.
type meshParams struct {
	HTTPPort, GRPCPort, TCPPort int // the echo server's ports
	Outbound, Upstream          string
	// MTLS chooses mutual TLS between the sidecars as Istio users do, with a
	// PeerAuthentication for namespace default, where both workloads live
	// (namespace-wide, so it does not depend on the mesh's root namespace): STRICT
	// when set, DISABLE when not. Without any PeerAuthentication the mesh is
	// PERMISSIVE and auto mTLS would encrypt anyway, so "off" must be said.
	MTLS bool
	// H2Upgrade carries the HTTP/1.1 requests between the sidecars over HTTP/2: a
	// DestinationRule for echo with connectionPool.http.h2UpgradePolicy UPGRADE.
	H2Upgrade bool
}

// The service ports clients call; the Host header names them.
const (
	echoHTTPHost = "echo:8080"
	echoGRPCHost = "echo:8079"
)

var meshTemplate = template.Must(template.New("mesh").Parse(`# Written by the Trellis benchmark harness (bench/). The harness runs the fortio echo
# server; workload "echo" only declares its ports. Load enters at the client sidecar.
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata:
  name: echo
  labels: {app: echo}
spec:
  service: echo
  ports:
  - {name: http, port: 8080, targetPort: {{.HTTPPort}}, protocol: HTTP}
  - {name: grpc, port: 8079, targetPort: {{.GRPCPort}}, protocol: GRPC}
  - {name: tcp, port: 9000, targetPort: {{.TCPPort}}, protocol: TCP}
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata:
  name: client
spec:
  outbound: {{.Outbound}}
  upstreams:
  - {service: echo, port: 9000, bind: {{.Upstream}}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls: {mode: {{if .MTLS}}STRICT{{else}}DISABLE{{end}}}
{{- if .H2Upgrade}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: echo
spec:
  host: echo
  trafficPolicy:
    connectionPool:
      http: {h2UpgradePolicy: UPGRADE}
{{- end}}
`))

// meshFile returns the mesh file of a trellis path.
func meshFile(p meshParams) ([]byte, error) {
	var b bytes.Buffer
	if err := meshTemplate.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("writing the mesh file: %w", err)
	}
	return b.Bytes(), nil
}

// startTrellis runs `trellis up` on the benchmark mesh and waits for its state file.
// params choose mutual TLS and HTTP/2 between the sidecars; the addresses are filled
// here.
func startTrellis(ctx context.Context, bin, dir, name string, echo *echoServer, params meshParams) (*trellisPath, error) {
	ports, err := child.FreePorts(2)
	if err != nil {
		return nil, err
	}
	params.Outbound, params.Upstream = child.Loopback(ports[0]), child.Loopback(ports[1])
	for addr, port := range map[string]*int{echo.http: &params.HTTPPort, echo.grpc: &params.GRPCPort, echo.tcp: &params.TCPPort} {
		if _, err := fmt.Sscanf(addr, "127.0.0.1:%d", port); err != nil {
			return nil, fmt.Errorf("echo server address %s: %w", addr, err)
		}
	}
	mesh, err := meshFile(params)
	if err != nil {
		return nil, err
	}
	meshPath := filepath.Join(dir, name+"-mesh.yaml")
	if err := os.WriteFile(meshPath, mesh, 0o644); err != nil {
		return nil, fmt.Errorf("writing the mesh file: %w", err)
	}
	statePath := filepath.Join(dir, name+"-state.json")
	os.Remove(statePath)
	p := &trellisPath{outbound: params.Outbound, upstream: params.Upstream}
	argv := []string{bin, "up", "-f", meshPath, "--state", statePath, "--xds-addr", "127.0.0.1:0",
		"--data-dir", filepath.Join(dir, name+"-data"), "--log-level", "warn"}
	// Newer binaries also serve xDS over TLS; a free port, not the default 15012 that
	// another mesh on the machine may hold.
	if child.HasFlag(bin, "up", "--secure-xds-addr") {
		argv = append(argv, "--secure-xds-addr", "127.0.0.1:0")
	}
	p.Child, err = child.Start(name, filepath.Join(dir, name+".log"), argv, nil)
	if err != nil {
		return nil, err
	}
	if p.state, err = waitState(ctx, p.Child, statePath); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitState polls for up's state file until it names both workloads' sidecars.
func waitState(ctx context.Context, c *child.Child, path string) (upState, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var st upState
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err == nil && stateProxyPID(st, "client") != 0 && stateProxyPID(st, "echo") != 0 {
			return st, nil
		}
		if err := c.Exited(); err != nil {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("waiting for %s's state file %s: %w", c.Name, path, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

func (p *trellisPath) target(workload string) target {
	switch workload {
	case WorkloadGRPC:
		return target{dest: p.outbound, host: echoGRPCHost}
	case WorkloadTCP:
		return target{dest: "tcp://" + p.upstream}
	default:
		return target{dest: "http://" + p.outbound + "/echo", host: echoHTTPHost}
	}
}

func (p *trellisPath) procs() []measured {
	return []measured{
		{name: "client sidecar", pid: stateProxyPID(p.state, "client")},
		{name: "server sidecar", pid: stateProxyPID(p.state, "echo")},
	}
}

// releasedMetric is the gauge a sidecar sets once it has given back its binary's
// start-up pages (docs/proxy.md, "Memory").
const releasedMetric = "trellis_startup_pages_released_bytes"

// settle waits until both sidecars have given back their binary's start-up pages
// (a few seconds after they are ready), so that the runs measure the sidecars as
// they serve, not their start-up. A binary without the metric is not waited for.
func (p *trellisPath) settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	for _, w := range p.state.Workloads {
		if w.Metrics == "" {
			continue
		}
		if err := waitReleased(ctx, client, "http://"+w.Metrics+"/stats/prometheus"); err != nil {
			return fmt.Errorf("%s sidecar: %w", w.Name, err)
		}
	}
	return nil
}

// waitReleased polls a sidecar's metrics until releasedMetric is above zero, or
// absent (an older binary).
func waitReleased(ctx context.Context, client *http.Client, url string) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		value, found, err := scrapeGauge(ctx, client, url, releasedMetric)
		if err == nil && (!found || value > 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s above 0 at %s: %w", releasedMetric, url, errors.Join(ctx.Err(), err))
		case <-tick.C:
		}
	}
}

// scrapeGauge reads the value of an unlabelled metric from a Prometheus text page.
func scrapeGauge(ctx context.Context, client *http.Client, url, name string) (value float64, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		value, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
		return value, err == nil, err
	}
	return 0, false, sc.Err()
}

// stop stops `trellis up`, which stops the sidecars (they drain) and the control plane.
func (p *trellisPath) stop() { p.Child.Stop(20 * time.Second) }

func stateProxyPID(st upState, workload string) int {
	for _, w := range st.Workloads {
		if w.Name == workload {
			return w.ProxyPID
		}
	}
	return 0
}

// trellisVersion describes the binary: `git describe` of the module when it was built
// from it, else the binary's path.
func trellisVersion(moduleDir string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = moduleDir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out[:len(out)-1])
}

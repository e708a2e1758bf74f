package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// state is the part of `trellis up --state` the tests read.
type state struct {
	ControlPlane struct {
		PID int    `json:"pid"`
		XDS string `json:"xds"`
	} `json:"controlPlane"`
	Workloads []workloadState `json:"workloads"`
}

type workloadState struct {
	Name         string            `json:"name"`
	Namespace    string            `json:"namespace"`
	PID          int               `json:"pid"`
	ProxyPID     int               `json:"proxyPid"`
	App          []string          `json:"app"`
	Inbound      string            `json:"inbound"`
	InboundPorts map[string]string `json:"inboundPorts"`
	Outbound     string            `json:"outbound"`
	Admin        string            `json:"admin"`
	Upstreams    []string          `json:"upstreams"`
}

func (s state) workload(t *testing.T, name string) workloadState {
	t.Helper()
	for _, w := range s.Workloads {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("workload %s is not in the state: %+v", name, s)
	return workloadState{}
}

// pids lists every process the state names.
func (s state) pids() []int {
	pids := []int{s.ControlPlane.PID}
	for _, w := range s.Workloads {
		pids = append(pids, w.ProxyPID)
		if w.PID != 0 {
			pids = append(pids, w.PID)
		}
	}
	return pids
}

// syncBuffer collects a process's output; safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// upProcess is a running `trellis up` (or `trellis demo`).
type upProcess struct {
	cmd       *exec.Cmd
	statePath string
	stdout    *syncBuffer
	stderr    *syncBuffer
	exited    chan struct{} // closed when the process has exited; then err is set
	err       error
}

// startTrellis runs the trellis binary with args in its own process group. Cleanup
// stops it with SIGTERM (SIGKILL to it and every process of its last state if that
// does not work) and, when the test failed, logs the end of its output.
func startTrellis(t *testing.T, statePath string, args ...string) *upProcess {
	t.Helper()
	p := &upProcess{statePath: statePath, stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(trellisBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting trellis %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		last, _ := p.readState()
		if !p.stop(30 * time.Second) {
			t.Errorf("trellis did not stop within 30s of SIGTERM; killed it")
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			for _, pid := range last.pids() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			<-p.exited
		}
		if t.Failed() {
			t.Logf("trellis %s\n--- stdout (end) ---\n%s\n--- stderr (end) ---\n%s",
				strings.Join(args, " "), tail(p.stdout.String(), 150), tail(p.stderr.String(), 150))
		}
	})
	return p
}

// startUp writes mesh to a file in a fresh directory and runs `trellis up` on it.
func startUp(t *testing.T, mesh string, extra ...string) (*upProcess, string) {
	t.Helper()
	dir := t.TempDir()
	meshPath := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(meshPath, []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(dir, "state.json")
	args := append([]string{"up", "-f", meshPath, "--state", statePath, "--xds-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, extra...)
	return startTrellis(t, statePath, args...), meshPath
}

// stop sends SIGTERM and waits up to grace for the process to exit.
func (p *upProcess) stop(grace time.Duration) bool {
	select {
	case <-p.exited:
		return true
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
		return false
	}
}

func (p *upProcess) readState() (state, error) {
	var st state
	data, err := os.ReadFile(p.statePath)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

// waitState waits for the state file to list n workloads, each app started.
func (p *upProcess) waitState(ctx context.Context, t *testing.T, n int) state {
	t.Helper()
	var st state
	eventually(ctx, t, fmt.Sprintf("the state file with %d workloads", n), func() error {
		select {
		case <-p.exited:
			t.Fatalf("trellis exited before it was ready: %v", p.err)
		default:
		}
		var err error
		if st, err = p.readState(); err != nil {
			return err
		}
		if len(st.Workloads) != n {
			return fmt.Errorf("%d workloads", len(st.Workloads))
		}
		return nil
	})
	return st
}

// waitLimit bounds each wait for the mesh to converge.
const waitLimit = 45 * time.Second

// eventually calls f until it succeeds, or ctx is done or waitLimit has passed, then
// fails the test with the last error.
func eventually(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %v", what, err)
		case <-tick.C:
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proxyClient sends every request through the HTTP proxy at addr: curl -x.
func proxyClient(addr string) *http.Client {
	u := &url.URL{Scheme: "http", Host: addr}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 4},
	}
}

// get sends a GET for target with c, optionally with another Host header, and
// returns the response with its body read.
func get(ctx context.Context, c *http.Client, target, host string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp, b.String(), err
}

// render fills a mesh file template; fortio is always available as {{.Fortio}}.
func render(t *testing.T, text string, data map[string]string) string {
	t.Helper()
	all := map[string]string{"Fortio": fortioBin}
	for k, v := range data {
		all[k] = v
	}
	var b strings.Builder
	if err := template.Must(template.New("mesh").Option("missingkey=error").Parse(text)).Execute(&b, all); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// fortioServer is the command of a fortio workload serving only the given servers.
// Each of http, grpc and tcp is a port variable such as "$(PORT_HTTP)", or "" to
// disable that server.
func fortioServer(http, grpc, extra string) string {
	arg := func(v string) string {
		if v == "" {
			return "disabled"
		}
		return "127.0.0.1:" + v
	}
	cmd := fmt.Sprintf(`[%q, "server", "-loglevel", "Warning", "-http-port", %q, "-grpc-port", %q, "-redirect-port", "disabled", "-tcp-port", "disabled", "-udp-port", "disabled"`,
		fortioBin, arg(http), arg(grpc))
	if extra != "" {
		cmd += ", " + extra
	}
	return cmd + "]"
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Faults (issue 10): each test runs a mesh under steady fortio load, breaks a part of
// it, and counts the requests sent and lost. Every test logs one line
//
//	FAULT scenario=<name> sent=<N> lost=<M> limit=<what held>
//
// so that `go test -v -run TestUnderFault ./test/e2e | grep FAULT` gives the table of
// docs/limits.md ("Failure behaviour").

// Load of every scenario: moderate, and short enough that the six add up to little.
const (
	faultQPS  = 200
	faultLoad = 6 * time.Second
)

// load is a `fortio load` running in the background.
type load struct {
	cmd    *exec.Cmd
	result string // its JSON result file
	out    *syncBuffer
	done   chan error
}

// loadResult is what fortio counted.
type loadResult struct {
	sent  int            // requests that got an answer or an error
	codes map[string]int // by HTTP status; -1 is a connection or protocol error
}

// lost is how many requests did not get a 200.
func (r loadResult) lost() int { return r.sent - r.codes["200"] }

// startLoad runs fortio against host (a service name:port) through the client
// workload's outbound listener, at faultQPS for d, on 4 connections.
func startLoad(t *testing.T, outbound, host string, d time.Duration) *load {
	t.Helper()
	l := &load{result: filepath.Join(t.TempDir(), "fortio.json"), out: &syncBuffer{}, done: make(chan error, 1)}
	l.cmd = exec.Command(fortioBin, "load", "-loglevel", "Error", "-qps", strconv.Itoa(faultQPS), "-t", d.String(),
		"-c", "4", "-timeout", "5s", "-H", "Host: "+host, "-json", l.result, "http://"+outbound+"/")
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("starting fortio load: %v", err)
	}
	go func() { l.done <- l.cmd.Wait() }()
	t.Cleanup(func() {
		l.cmd.Process.Kill()
		<-l.done
	})
	return l
}

// wait waits for the load to end and reads what fortio counted.
func (l *load) wait(t *testing.T) loadResult {
	t.Helper()
	select {
	case <-l.done:
		l.done <- nil // for the cleanup
	case <-time.After(faultLoad + time.Minute):
		t.Fatalf("fortio load did not end; output:\n%s", l.out.String())
	}
	data, err := os.ReadFile(l.result)
	if err != nil {
		t.Fatalf("fortio load wrote no result: %v; output:\n%s", err, l.out.String())
	}
	var doc struct {
		RetCodes          map[string]int
		DurationHistogram struct{ Count int }
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("fortio result: %v", err)
	}
	return loadResult{sent: doc.DurationHistogram.Count, codes: doc.RetCodes}
}

// report logs the scenario's figures in the FAULT format and fails the test when
// more than maxLost requests were lost.
func report(t *testing.T, scenario string, r loadResult, maxLost int, limit string) {
	t.Helper()
	t.Logf("FAULT scenario=%s sent=%d lost=%d limit=%q codes=%v", scenario, r.sent, r.lost(), limit, r.codes)
	if r.lost() > maxLost {
		t.Errorf("%s: %d of %d requests lost (statuses %v); the limit is %s", scenario, r.lost(), r.sent, r.codes, limit)
	}
	// A run that sent far less than asked measured nothing.
	if want := int(faultQPS * faultLoad.Seconds() / 2); r.sent < want {
		t.Errorf("%s: fortio sent only %d requests, want at least %d", scenario, r.sent, want)
	}
}

// pause lets the load run for d before the fault, so that the fault hits a mesh
// under steady traffic.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// replaceFile writes content to path as editors save: a temporary file, then a
// rename, so a watcher never reads half of it.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// meshFile is the mesh file a meshRun runs.
func (m *meshRun) meshFile() string { return filepath.Join(filepath.Dir(m.up.statePath), "mesh.yaml") }

// answersWith waits until n answers in a row to r have status 200, header name set
// to value and, if version is not empty, come from that version.
func answersWith(ctx context.Context, t *testing.T, c *http.Client, r request, n int, name, value, version string) {
	t.Helper()
	eventually(ctx, t, fmt.Sprintf("%d answers in a row with %s: %s from version %q", n, name, value, version), func() error {
		for range n {
			a, err := do(ctx, c, r)
			if err != nil {
				return err
			}
			if a.status != http.StatusOK || a.header.Get(name) != value || version != "" && a.version != version {
				return fmt.Errorf("status %d, %s %q, version %q", a.status, name, a.header.Get(name), a.version)
			}
		}
		return nil
	})
}

// allFrom sends r 50 times and fails the test unless version answered all of them
// with 200; when says what the mesh went through.
func allFrom(ctx context.Context, t *testing.T, c *http.Client, r request, version, when string) {
	t.Helper()
	tl, err := send(ctx, c, r, 50)
	if err != nil {
		t.Fatal(err)
	}
	if tl.versions[version] != 50 {
		t.Errorf("%s, 50 requests: %v; want all from %s", when, tl, version)
	}
}

// twoEchoes are the replicas echo-v1 and echo-v2 of service echo, with subsets v1
// and v2.
func twoEchoes() string {
	return httpEcho("echo-v1", "echo", "v1") + httpEcho("echo-v2", "echo", "v2") + versionSubsets("echo")
}

// taggedRoute is a VirtualService for echo that sends weight percent of the requests
// to subset v1, the rest to v2, and sets the response header x-config: tag.
func taggedRoute(tag string, weight int) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - headers: {response: {set: {x-config: %q}}}
    route:
    - {destination: {host: echo, subset: v1}, weight: %d}
    - {destination: {host: echo, subset: v2}, weight: %d}
`, tag, weight, 100-weight)
}

// xdsCounts sums, over the sidecars ws, the xDS counters named xds.<type>.<name>.
func xdsCounts(ctx context.Context, ws []workloadState) (connected, accepted, rejected uint64, err error) {
	for _, w := range ws {
		stats, err := sidecarStats(ctx, w.Admin)
		if err != nil {
			return 0, 0, 0, err
		}
		connected += stats["xds.connected"]
		for _, typ := range []string{"lds", "rds", "cds", "eds"} {
			accepted += stats["xds."+typ+".update_success"]
			rejected += stats["xds."+typ+".update_rejected"]
		}
	}
	return connected, accepted, rejected, nil
}

// echoCluster prefixes the counters of the client's cluster of echo.
const echoCluster = "cluster.outbound|8080||echo."

func TestUnderFaultControlPlaneKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	echo := twoEchoes()
	m := startMesh(ctx, t, echo+taggedRoute("before", 50))
	r := request{target: "http://echo:8080/"}
	answersWith(ctx, t, m.c, r, 5, "X-Config", "before", "")

	_, accepted, rejected, err := xdsCounts(ctx, m.st.Workloads)
	if err != nil {
		t.Fatal(err)
	}

	l := startLoad(t, m.outbound, "echo:8080", faultLoad)
	pause(ctx, time.Second)
	old := m.st.ControlPlane.PID
	if old <= 0 {
		t.Fatalf("the state has no controlPlane.pid: %+v", m.st)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the control plane (%d): %v", old, err)
	}
	// A change made while it is down (up restarts it after a backoff of 250ms).
	replaceFile(t, m.meshFile(), echo+taggedRoute("after", 0)+clientWorkload(m.outbound))
	eventually(ctx, t, "the control plane restarted", func() error {
		st, err := m.up.readState()
		if err != nil {
			return err
		}
		if st.ControlPlane.PID == 0 || st.ControlPlane.PID == old {
			return fmt.Errorf("control plane pid %d", st.ControlPlane.PID)
		}
		return nil
	})
	// The change applies once it is back.
	answersWith(ctx, t, m.c, r, 10, "X-Config", "after", "v2")
	// Every sidecar reconnected, was sent the whole configuration again and ACKed it.
	eventually(ctx, t, "every sidecar connected again, resynced and ACKing", func() error {
		connected, nowAccepted, nowRejected, err := xdsCounts(ctx, m.st.Workloads)
		if err != nil {
			return err
		}
		if int(connected) != len(m.st.Workloads) || nowAccepted < accepted+uint64(4*len(m.st.Workloads)) || nowRejected != rejected {
			return fmt.Errorf("%d of %d connected; updates accepted %d (before the kill %d), rejected %d (before %d)",
				connected, len(m.st.Workloads), nowAccepted, accepted, nowRejected, rejected)
		}
		return nil
	})
	report(t, "control-plane-sigkill", l.wait(t), 0, "0 lost")
}

func TestUnderFaultConfigChurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	echo := twoEchoes()
	m := startMesh(ctx, t, echo+taggedRoute("0", 100))
	r := request{target: "http://echo:8080/"}
	answersWith(ctx, t, m.c, r, 5, "X-Config", "0", "v1")

	l := startLoad(t, m.outbound, "echo:8080", faultLoad)
	pause(ctx, 500*time.Millisecond)
	// Twenty route changes in five seconds; the last sends everything to v2.
	const changes = 20
	tick := time.NewTicker(5 * time.Second / changes)
	defer tick.Stop()
	for i := 1; i <= changes; i++ {
		<-tick.C
		weight := (i * 37) % 101
		if i == changes {
			weight = 0
		}
		replaceFile(t, m.meshFile(), echo+taggedRoute(strconv.Itoa(i), weight)+clientWorkload(m.outbound))
	}
	// The final configuration wins.
	answersWith(ctx, t, m.c, r, 20, "X-Config", strconv.Itoa(changes), "v2")
	report(t, "config-churn-20-in-5s", l.wait(t), 0, "0 lost")
	allFrom(ctx, t, m.c, r, "v2", "after the churn (the final configuration)")
}

func TestUnderFaultReplicaDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// echo-v1 runs while the file alive exists: once it is gone and the app killed,
	// every restart exits at once, as a crash-looping app does.
	alive := filepath.Join(t.TempDir(), "alive")
	if err := os.WriteFile(alive, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dying := fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}}
spec:
  service: echo
  ports: [{name: http, port: 8080}]
  command: ["sh", "-c", "test -e %s && exec %s server -loglevel Warning -http-port 127.0.0.1:$(PORT) -grpc-port disabled -redirect-port disabled -tcp-port disabled -udp-port disabled -echo-server-default-params header=X-Version:v1"]
`, alive, fortioBin)
	// The default retry policy (no VirtualService) and outlier detection.
	m := startMesh(ctx, t, dying+httpEcho("echo-v2", "echo", "v2")+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s}
`)
	r := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v1")
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v2")
	client := m.st.workload(t, "client")
	if n, err := statSum(ctx, client, echoCluster, ".membership_total"); err != nil || n != 2 {
		t.Fatalf("client's echo cluster balances over %d endpoints (%v), want 2", n, err)
	}

	retriesBefore, err := statSum(ctx, client, echoCluster, ".upstream_rq_retry")
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, m.outbound, "echo:8080", faultLoad)
	pause(ctx, time.Second)
	if err := os.Remove(alive); err != nil {
		t.Fatal(err)
	}
	app := m.st.workload(t, "echo-v1").PID
	if err := syscall.Kill(app, syscall.SIGKILL); err != nil {
		t.Fatalf("killing echo-v1's app (%d): %v", app, err)
	}
	// The dead endpoint leaves the pool: outlier detection ejects it.
	eventually(ctx, t, "echo-v1 ejected by the client's sidecar", func() error {
		n, err := statSum(ctx, client, echoCluster, ".outlier_detection.ejections_active")
		if err == nil && n != 1 {
			err = fmt.Errorf("%d endpoints ejected", n)
		}
		return err
	})
	res := l.wait(t)
	report(t, "app-replica-dies", res, res.sent/1000, "at most 0.1% lost")
	// The fault was real: requests reached the dead replica and were retried.
	retries, err := statSum(ctx, client, echoCluster, ".upstream_rq_retry")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the client's sidecar retried %d requests", retries-retriesBefore)
	if retries == retriesBefore {
		t.Errorf("the client's sidecar retried nothing: the load never reached the dead replica")
	}
	allFrom(ctx, t, m.c, r, "v2", "with echo-v1 dead")
}

func TestUnderFaultSidecarSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const drain = 2 * time.Second
	v1 := httpEcho("echo-v1", "echo", "v1") + fmt.Sprintf("  drainPeriod: %s\n", drain)
	m := startMesh(ctx, t, v1+httpEcho("echo-v2", "echo", "v2"))
	r := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v1")
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v2")
	v1State := m.st.workload(t, "echo-v1")
	inbound := v1State.InboundPorts["http"]

	l := startLoad(t, m.outbound, "echo:8080", faultLoad)
	pause(ctx, time.Second)
	// Requests in flight at the SIGTERM that end after the drain period, straight to
	// the sidecar's inbound listener.
	const inFlight = 4
	results := make(chan error, inFlight)
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for range inFlight {
		go func() {
			resp, _, err := get(ctx, direct, "http://"+inbound+"/?delay=3s", "")
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			results <- err
		}()
	}
	pause(ctx, 200*time.Millisecond)
	sigterm := time.Now()
	if err := syscall.Kill(v1State.ProxyPID, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to echo-v1's sidecar (%d): %v", v1State.ProxyPID, err)
	}
	// Its endpoint leaves the client's pool (until up restarts it): how long after?
	left := make(chan time.Duration, 1)
	go func() {
		client := m.st.workload(t, "client")
		for ctx.Err() == nil && time.Since(sigterm) < 10*time.Second {
			if n, err := statSum(ctx, client, echoCluster, ".membership_total"); err == nil && n == 1 {
				left <- time.Since(sigterm)
				return
			}
			pause(ctx, 20*time.Millisecond)
		}
		left <- -1
	}()
	// During the drain period a new connection is still served, with Connection: close.
	pause(ctx, drain/4)
	resp, _, err := get(ctx, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}, "http://"+inbound+"/", "")
	if err == nil && resp.Header.Get("X-Version") != "v1" {
		err = fmt.Errorf("answered by %q", resp.Header.Get("X-Version"))
	}
	if err != nil {
		t.Errorf("a new connection in the drain period: %v; want it served", err)
	} else if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("in the drain period: status %d, Connection: close %v; want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	// It stops accepting only once the drain period is over.
	var refused time.Duration
	eventually(ctx, t, "echo-v1's sidecar stops accepting", func() error {
		c, err := net.DialTimeout("tcp", inbound, time.Second)
		if err != nil {
			refused = time.Since(sigterm)
			return nil
		}
		c.Close()
		return fmt.Errorf("accepting %s after SIGTERM", time.Since(sigterm).Round(time.Millisecond))
	})
	if refused < drain {
		t.Errorf("echo-v1's sidecar stopped accepting %s after SIGTERM, before its drain period of %s", refused, drain)
	}
	if d := <-left; d < 0 {
		t.Errorf("echo-v1 never left the client's pool after the SIGTERM")
	} else {
		t.Logf("echo-v1 left the client's pool %s after the SIGTERM; it stopped accepting %s after it", d.Round(time.Millisecond), refused.Round(time.Millisecond))
	}
	failed := 0
	for range inFlight {
		if err := <-results; err != nil {
			t.Errorf("a request in flight at the SIGTERM: %v", err)
			failed++
		}
	}
	t.Logf("FAULT scenario=sidecar-sigterm-in-flight sent=%d lost=%d limit=%q", inFlight, failed, "0 lost")
	// Then it exited (and up started it again).
	eventually(ctx, t, "echo-v1's sidecar exited and restarted", func() error {
		st, err := m.up.readState()
		if err != nil {
			return err
		}
		if pid := st.workload(t, "echo-v1").ProxyPID; pid == 0 || pid == v1State.ProxyPID {
			return fmt.Errorf("sidecar pid %d", pid)
		}
		return nil
	})
	report(t, "sidecar-sigterm", l.wait(t), 0, "0 lost")
}

// meshSnapshot is what must survive a restart of the whole mesh.
type meshSnapshot struct {
	root       string            // the CA root(s), PEM, from the data directory
	identities map[string]string // workload -> SPIFFE ID of its certificate
	trust      map[string]string // workload -> SHA-256 of the roots it trusts
	config     map[string]string // the client sidecar's routes and clusters, normalized JSON
	members    map[string]int    // the client sidecar's endpoints: how many per cluster
	answers    string            // what 20 requests to echo got
}

// snapshotMesh reads a meshSnapshot of the running mesh st (data directory dataDir)
// through the client c.
func snapshotMesh(ctx context.Context, t *testing.T, st state, dataDir string, c *http.Client) meshSnapshot {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(dataDir, "control", "ca", "roots.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s := meshSnapshot{root: string(root), identities: map[string]string{}, trust: map[string]string{}, config: map[string]string{}, members: map[string]int{}}
	for _, w := range st.Workloads {
		var doc struct {
			Identity    string `json:"identity"`
			TrustBundle struct {
				Roots []struct{ SHA256 string } `json:"roots"`
			} `json:"trustBundle"`
		}
		_, body, err := get(ctx, &http.Client{Timeout: 5 * time.Second}, "http://"+w.Admin+"/certs", "")
		if err != nil || json.Unmarshal([]byte(body), &doc) != nil {
			t.Fatalf("%s /certs: %v %s", w.Name, err, body)
		}
		s.identities[w.Name] = doc.Identity
		s.trust[w.Name] = fmt.Sprint(doc.TrustBundle.Roots)
	}
	_, body, err := get(ctx, &http.Client{Timeout: 5 * time.Second}, "http://"+st.workload(t, "client").Admin+"/config_dump", "")
	if err != nil {
		t.Fatal(err)
	}
	type section struct {
		Resources []struct {
			Name     string
			Resource any
		}
	}
	var dump struct{ Routes, Clusters, Endpoints section }
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatalf("client /config_dump: %v", err)
	}
	for kind, sec := range map[string]section{"routes": dump.Routes, "clusters": dump.Clusters} {
		for _, r := range sec.Resources {
			// encoding/json sorts keys: protojson's spacing and order do not matter.
			norm, _ := json.Marshal(r.Resource)
			s.config[kind+"/"+r.Name] = string(norm)
		}
	}
	for _, r := range dump.Endpoints.Resources {
		var cla struct {
			Endpoints []struct{ LbEndpoints []any }
		}
		raw, _ := json.Marshal(r.Resource)
		if err := json.Unmarshal(raw, &cla); err != nil {
			t.Fatalf("client /config_dump: endpoints %s: %v", r.Name, err)
		}
		for _, e := range cla.Endpoints {
			s.members[r.Name] += len(e.LbEndpoints)
		}
	}
	tl, err := send(ctx, c, request{target: "http://echo:8080/"}, 20)
	if err != nil {
		t.Fatal(err)
	}
	s.answers = tl.String()
	return s
}

func TestUnderFaultMeshRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	meshPath, statePath, dataDir := filepath.Join(dir, "mesh.yaml"), filepath.Join(dir, "state.json"), filepath.Join(dir, "data")
	outbound := freeAddr(t)
	// Strict mutual TLS, and all traffic to v2: the answers depend on the config and
	// the identities.
	mesh := twoEchoes() + taggedRoute("restart", 0) + strictMesh + clientWorkload(outbound)
	if err := os.WriteFile(meshPath, []byte(mesh), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"up", "-f", meshPath, "--state", statePath, "--xds-addr", "127.0.0.1:0", "--data-dir", dataDir}
	c := proxyClient(outbound)
	run := func() (*upProcess, meshSnapshot) {
		t.Helper()
		up := startTrellis(t, statePath, args...)
		st := up.waitState(ctx, t, 3)
		answersWith(ctx, t, c, request{target: "http://echo:8080/"}, 5, "X-Config", "restart", "v2")
		eventually(ctx, t, "echo-v2 in the client's pool", func() error {
			n, err := statSum(ctx, st.workload(t, "client"), "cluster.outbound|8080|v2|echo.", ".membership_total")
			if err == nil && n != 1 {
				err = fmt.Errorf("%d endpoints", n)
			}
			return err
		})
		return up, snapshotMesh(ctx, t, st, dataDir, c)
	}

	first, before := run()
	if !first.stop(30 * time.Second) {
		t.Fatal("trellis up did not stop within 30s of SIGTERM")
	}
	if first.err != nil {
		t.Fatalf("trellis up exited with %v", first.err)
	}
	_, after := run()
	if before.root != after.root {
		t.Errorf("the CA root changed across the restart")
	}
	for _, diff := range []struct {
		what          string
		before, after any
	}{
		{"identities", before.identities, after.identities},
		{"trusted roots", before.trust, after.trust},
		{"endpoints per cluster", before.members, after.members},
		{"answers", before.answers, after.answers},
	} {
		if fmt.Sprint(diff.before) != fmt.Sprint(diff.after) {
			t.Errorf("%s before the restart: %v; after: %v", diff.what, diff.before, diff.after)
		}
	}
	if len(before.config) == 0 {
		t.Fatal("the client sidecar dumped no routes or clusters")
	}
	for name, b := range before.config {
		if a := after.config[name]; a != b {
			t.Errorf("client sidecar's %s before the restart:\n%s\nafter:\n%s", name, b, a)
		}
	}
	for name := range after.config {
		if _, ok := before.config[name]; !ok {
			t.Errorf("client sidecar's %s is new after the restart", name)
		}
	}
	// The restarted mesh serves a steady load without losing a request.
	report(t, "mesh-restart", startLoad(t, outbound, "echo:8080", faultLoad).wait(t), 0, "0 lost after the restart")
}

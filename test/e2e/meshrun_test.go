package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The traffic-management tests (issue 3) each start their own mesh: fortio apps in
// versions, a client-only workload whose outbound listener the test sends through,
// and the rules under test. The helpers below write those meshes and count what
// comes back.

// meshRun is a running `trellis up` whose client workload is ready for requests.
type meshRun struct {
	up       *upProcess
	st       state
	outbound string       // the client workload's outbound listener
	c        *http.Client // sends through outbound as an HTTP proxy; follows no redirect
}

// startMesh runs `trellis up` on docs plus a client workload (named "client", with
// upstreams, YAML flow mappings, if any) and waits until the state lists every
// workload. The mesh stops when the test ends.
func startMesh(ctx context.Context, t *testing.T, docs string, upstreams ...string) *meshRun {
	t.Helper()
	return startMeshFlags(ctx, t, docs, nil, upstreams...)
}

// startMeshFlags is startMesh with more flags for `trellis up`.
func startMeshFlags(ctx context.Context, t *testing.T, docs string, flags []string, upstreams ...string) *meshRun {
	t.Helper()
	outbound := freeAddr(t)
	client := clientWorkload(outbound)
	if len(upstreams) > 0 {
		client += "  upstreams:\n"
		for _, u := range upstreams {
			client += "  - " + u + "\n"
		}
	}
	mesh := docs + client
	up, _ := startUp(t, mesh, flags...)
	st := up.waitState(ctx, t, strings.Count(mesh, "kind: Workload\n"))
	c := proxyClient(outbound)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &meshRun{up: up, st: st, outbound: outbound, c: c}
}

// clientWorkload is the Workload "client" (labels app=client) whose sidecar takes
// the test's requests on outbound.
func clientWorkload(outbound string) string {
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  outbound: %q
`, outbound)
}

// httpEcho is a Workload of service svc with labels app=svc and version: fortio
// serving HTTP on service port 8080. Every answer carries the header X-Version:
// version; params (fortio echo parameters such as "status=503:50" or "delay=2s",
// joined by &) apply to each request that has no query string of its own.
func httpEcho(name, svc, version string, params ...string) string {
	query := strings.Join(append([]string{"header=X-Version:" + version}, params...), "&")
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: %s, labels: {app: %s, version: %s}}
spec:
  service: %s
  ports: [{name: http, port: 8080}]
  command: %s
`, name, svc, version, svc, fortioServer("$(PORT)", "", fmt.Sprintf(`"-max-echo-delay", "10s", "-echo-server-default-params", %q`, query)))
}

// tcpEchoApp is a Workload of service svc with labels app=svc and version: fortio's
// TCP echo server on service port 9000.
func tcpEchoApp(name, svc, version string) string {
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: %s, labels: {app: %s, version: %s}}
spec:
  service: %s
  ports: [{name: tcp, port: 9000, protocol: TCP}]
  command: [%q, "tcp-echo", "-loglevel", "Warning", "-tcp-port", "127.0.0.1:$(PORT)"]
`, name, svc, version, svc, fortioBin)
}

// versionSubsets is a DestinationRule for host with subsets v1 and v2 by the version
// label.
func versionSubsets(host string) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s}
spec:
  host: %s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, host, host)
}

// request is one request through the mesh, without a body.
type request struct {
	method string      // GET if empty
	target string      // the URL
	header http.Header // added to the request
}

// answer is the part of a response the tests look at.
type answer struct {
	status  int
	version string // X-Version
	header  http.Header
	body    string
	elapsed time.Duration
}

// do sends r with c and reads the whole answer.
func do(ctx context.Context, c *http.Client, r request) (answer, error) {
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, r.target, nil)
	if err != nil {
		return answer{}, err
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, version: resp.Header.Get("X-Version"), header: resp.Header, body: string(body), elapsed: time.Since(start)}
	if err != nil {
		return a, fmt.Errorf("reading the answer to %s: %w", r.target, err)
	}
	return a, nil
}

// tally counts n answers to r: by status, and the versions of the 200s.
type tally struct {
	status   map[int]int
	versions map[string]int
}

func (tl tally) String() string {
	return fmt.Sprintf("statuses %v, versions of the 200s %v", tl.status, tl.versions)
}

// share is the share of the 200s that version answered, in percent.
func (tl tally) share(version string) float64 {
	total := 0
	for _, n := range tl.versions {
		total += n
	}
	if total == 0 {
		return 0
	}
	return 100 * float64(tl.versions[version]) / float64(total)
}

// send sends r n times, one after the other, and counts the answers; a transport
// error ends it.
func send(ctx context.Context, c *http.Client, r request, n int) (tally, error) {
	tl := tally{status: map[int]int{}, versions: map[string]int{}}
	for range n {
		a, err := do(ctx, c, r)
		if err != nil {
			return tl, err
		}
		tl.status[a.status]++
		if a.status == http.StatusOK {
			tl.versions[a.version]++
		}
	}
	return tl, nil
}

// waitAnswer waits until r is answered with status and, if version is not empty,
// by that version.
func waitAnswer(ctx context.Context, t *testing.T, c *http.Client, r request, status int, version string) {
	t.Helper()
	eventually(ctx, t, fmt.Sprintf("%d from version %q for %s %v", status, version, r.target, r.header), func() error {
		a, err := do(ctx, c, r)
		if err != nil {
			return err
		}
		if a.status != status || version != "" && a.version != version {
			return fmt.Errorf("status %d from version %q: %.200s", a.status, a.version, a.body)
		}
		return nil
	})
}

// sidecarStats reads the counters of the sidecar whose admin address is admin.
func sidecarStats(ctx context.Context, admin string) (map[string]uint64, error) {
	resp, body, err := get(ctx, &http.Client{Timeout: 5 * time.Second}, "http://"+admin+"/stats", "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/stats: status %s", admin, resp.Status)
	}
	stats := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s/stats: line %q: %w", admin, line, err)
		}
		stats[name] = n
	}
	return stats, nil
}

// inboundRequests is how many requests a workload's sidecar answered on its inbound
// listeners, whatever the status.
func inboundRequests(ctx context.Context, w workloadState) (uint64, error) {
	stats, err := sidecarStats(ctx, w.Admin)
	if err != nil {
		return 0, err
	}
	var n uint64
	for name, v := range stats {
		if strings.HasPrefix(name, "listener.inbound|") && (strings.HasSuffix(name, "xx") || strings.HasSuffix(name, ".rq_no_response")) {
			n += v
		}
	}
	return n, nil
}

// statSum adds the counters of a sidecar whose names start with prefix and end
// with suffix.
func statSum(ctx context.Context, w workloadState, prefix, suffix string) (uint64, error) {
	stats, err := sidecarStats(ctx, w.Admin)
	if err != nil {
		return 0, err
	}
	var n uint64
	for name, v := range stats {
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix) {
			n += v
		}
	}
	return n, nil
}

// concurrently runs f in n goroutines, each given its index, and waits for them.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// served runs f and returns how many requests the inbound listeners of each of ws
// answered meanwhile, by workload name, once the counts have settled.
func served(ctx context.Context, t *testing.T, ws []workloadState, want uint64, f func() error) map[string]uint64 {
	t.Helper()
	count := func() (map[string]uint64, uint64, error) {
		counts, total := map[string]uint64{}, uint64(0)
		for _, w := range ws {
			n, err := inboundRequests(ctx, w)
			if err != nil {
				return nil, 0, err
			}
			counts[w.Name] = n
			total += n
		}
		return counts, total, nil
	}
	before, start, err := count()
	if err != nil {
		t.Fatal(err)
	}
	if err := f(); err != nil {
		t.Fatal(err)
	}
	var delta map[string]uint64
	eventually(ctx, t, fmt.Sprintf("%d requests counted", want), func() error {
		after, end, err := count()
		if err != nil {
			return err
		}
		delta = map[string]uint64{}
		for name, n := range after {
			delta[name] = n - before[name]
		}
		if end-start < want {
			return fmt.Errorf("counted %v", delta)
		}
		return nil
	})
	return delta
}

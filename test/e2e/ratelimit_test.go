package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Rate limiting (issue 8): a RateLimitPolicy's Local rule is enforced by each
// server-side sidecar's token bucket; a Global rule by the rate-limit service the
// control plane embeds (memory store, or Redis).

// TestLocalRateLimit: 5/s lets about 5 of a burst of 20 through, answers 429 with the
// headers to the rest, and lets requests through again a second later.
func TestLocalRateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+`---
apiVersion: trellis.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: echo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - scope: Local
    limit: {requests: 5, per: 1s}
`)
	r := request{target: "http://echo:8080/"}
	eventually(ctx, t, "the local limit in force", func() error {
		a, err := do(ctx, m.c, r)
		if err == nil && a.header.Get("X-Ratelimit-Limit") != "5" {
			err = fmt.Errorf("status %d, x-ratelimit-limit %q", a.status, a.header.Get("X-Ratelimit-Limit"))
		}
		return err
	})
	waitFullBucket := func() {
		// The bucket refills once a second; a new second starts a full bucket.
		timer := time.NewTimer(1100 * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	waitFullBucket()

	var ok, limited int
	var refusal answer
	start := time.Now()
	for range 20 {
		a, err := do(ctx, m.c, r)
		if err != nil {
			t.Fatal(err)
		}
		switch a.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			refusal = a
		default:
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	}
	burst := time.Since(start)
	// About 5: one more per refill that happened during the burst.
	if maxOK := 5 + 5*int(burst/time.Second); ok < 5 || ok > maxOK || limited == 0 {
		t.Fatalf("burst of 20 in %v: %d OK, %d limited; want 5..%d OK and the rest 429", burst, ok, limited, maxOK)
	}
	for name, want := range map[string]string{"X-Ratelimit-Limit": "5", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "1", "Retry-After": "1"} {
		if got := refusal.header.Get(name); got != want {
			t.Errorf("429: %s = %q, want %q (headers %v)", name, got, want, refusal.header)
		}
	}
	stats, err := sidecarStats(ctx, m.st.workload(t, "echo-v1").Admin)
	if err != nil {
		t.Fatal(err)
	}
	var flagged uint64
	for name, v := range stats {
		if strings.HasPrefix(name, "listener.inbound|") && strings.HasSuffix(name, ".rq_flag_RL") {
			flagged += v
		}
	}
	if flagged < uint64(limited) {
		t.Errorf("the server sidecar counts %d requests with flag RL, want at least %d", flagged, limited)
	}
	waitFullBucket()
	a, err := do(ctx, m.c, r)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("a second later: status %d, %v; want 200", a.status, err)
	}
}

// TestGlobalRateLimit: 10/minute on a service with two replicas lets exactly 10
// requests of one client through in total; a second client has its own budget.
func TestGlobalRateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := startRateLimitMesh(ctx, t)
	checkGlobalBudget(ctx, t, m, "run-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

// TestGlobalRateLimitRedis: the same with the control plane's service counting in a
// real redis-server; with Redis stopped, requests go through (fail open).
func TestGlobalRateLimitRedis(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	redis := startRedis(ctx, t, bin)
	m := startRateLimitMesh(ctx, t, "--ratelimit-store", "redis", "--redis-addr", redis.addr)
	user := "run-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	checkGlobalBudget(ctx, t, m, user)

	redis.stop()
	r := request{target: "http://echo:8080/", header: http.Header{"X-User": {user + "-alice"}}}
	for i := range 5 {
		a, err := do(ctx, m.c, r)
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK {
			t.Fatalf("Redis stopped, request %d: status %d, want 200 (fail open): %s", i, a.status, a.body)
		}
	}
}

// startRateLimitMesh runs two replicas of echo (versions a and b) under a Global
// 10/minute limit per x-user.
func startRateLimitMesh(ctx context.Context, t *testing.T, upArgs ...string) *meshRun {
	t.Helper()
	docs := httpEcho("echo-a", "echo", "a") + httpEcho("echo-b", "echo", "b") + `---
apiVersion: trellis.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: echo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - scope: Global
    limit: {requests: 10, per: 1m}
    clientSelectors:
    - headers: [{name: x-user, type: Distinct}]
`
	outbound := freeAddr(t)
	mesh := docs + clientWorkload(outbound)
	up, _ := startUp(t, mesh, upArgs...)
	st := up.waitState(ctx, t, 3)
	c := proxyClient(outbound)
	return &meshRun{up: up, st: st, outbound: outbound, c: c}
}

// checkGlobalBudget waits until both replicas enforce the limit, then checks that
// user-alice gets exactly 10 requests through, and user-bob 10 of his own.
func checkGlobalBudget(ctx context.Context, t *testing.T, m *meshRun, user string) {
	t.Helper()
	// Both replicas must have the limit: each answer says which one it came from.
	seen := map[string]bool{}
	i := 0
	eventually(ctx, t, "the global limit on both replicas", func() error {
		i++
		a, err := do(ctx, m.c, request{target: "http://echo:8080/", header: http.Header{"X-User": {fmt.Sprintf("%s-warmup-%d", user, i)}}})
		if err != nil {
			return err
		}
		if a.header.Get("X-Ratelimit-Limit") == "10" {
			seen[a.version] = true
		}
		if !seen["a"] || !seen["b"] {
			return fmt.Errorf("replicas with the limit so far: %v (last: status %d, version %q)", seen, a.status, a.version)
		}
		return nil
	})
	// A window is one minute from the epoch: do not start near its end.
	if s := time.Now().Second(); s >= 45 {
		timer := time.NewTimer(time.Duration(61-s) * time.Second)
		select {
		case <-timer.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	for _, who := range []string{"alice", "bob"} {
		r := request{target: "http://echo:8080/", header: http.Header{"X-User": {user + "-" + who}}}
		tl, err := send(ctx, m.c, r, 25)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %v", who, tl)
		if tl.status[http.StatusOK] != 10 || tl.status[http.StatusTooManyRequests] != 15 {
			t.Errorf("%s: %v; want exactly 10 OK and 15 refused", who, tl)
		}
		if len(tl.versions) != 2 {
			t.Errorf("%s: the 200s came from %v; want both replicas", who, tl.versions)
		}
		a, err := do(ctx, m.c, r)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"X-Ratelimit-Limit": "10", "X-Ratelimit-Remaining": "0"} {
			if got := a.header.Get(name); got != want {
				t.Errorf("%s over the limit: %s = %q, want %q", who, name, got, want)
			}
		}
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || a.header.Get("X-Ratelimit-Reset") == "" {
			t.Errorf("%s over the limit: status %d, headers %v; want 429 with retry-after and x-ratelimit-reset", who, a.status, a.header)
		}
	}
}

// redisServer is a redis-server on loopback that the test started.
type redisServer struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startRedis starts redis-server without persistence on a free port and waits until
// it answers; it is stopped when the test ends.
func startRedis(ctx context.Context, t *testing.T, bin string) *redisServer {
	t.Helper()
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	s := &redisServer{addr: addr, exited: make(chan struct{}),
		cmd: exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.stop)
	eventually(ctx, t, "redis-server to answer", func() error {
		select {
		case <-s.exited:
			return errors.New("redis-server exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil || !strings.HasPrefix(string(buf[:n]), "+PONG") {
			return fmt.Errorf("PING: %q, %v", buf[:n], err)
		}
		return nil
	})
	return s
}

// stop kills redis-server and waits for it to exit.
func (s *redisServer) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

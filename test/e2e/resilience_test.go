package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Istio's "Fault injection" task: an abort answers its status without reaching the
// app, a delay delays, and a percentage applies to that share of requests.
func TestFaultInjection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault:
      abort: {httpStatus: 418, percentage: {value: 100}}
    route: [{destination: {host: echo}}]
  - match: [{headers: {x-fault: {exact: half-abort}}}]
    fault:
      abort: {httpStatus: 500, percentage: {value: 50}}
    retries: {attempts: 0}
    route: [{destination: {host: echo}}]
  - match: [{headers: {x-fault: {exact: delay}}}]
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 100}}
    route: [{destination: {host: echo}}]
  - route: [{destination: {host: echo}}]
`)
	fault := func(kind string) request {
		return request{target: "http://echo:8080/", header: http.Header{"X-Fault": {kind}}}
	}
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/"}, http.StatusOK, "v1")
	waitAnswer(ctx, t, m.c, fault("abort"), http.StatusTeapot, "")

	t.Run("abort", func(t *testing.T) {
		app := m.st.workload(t, "echo-v1")
		before, err := inboundRequests(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		got, err := send(ctx, m.c, fault("abort"), 20)
		if err != nil {
			t.Fatal(err)
		}
		if got.status[http.StatusTeapot] != 20 {
			t.Errorf("20 requests: %v; want all 418", got)
		}
		after, err := inboundRequests(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("echo-v1's sidecar answered %d requests during the aborts, want none to reach it", after-before)
		}
	})
	t.Run("abort half the requests", func(t *testing.T) {
		got, err := send(ctx, m.c, fault("half-abort"), 200)
		if err != nil {
			t.Fatal(err)
		}
		// 100 expected; 70..130 is beyond four standard deviations.
		if n := got.status[http.StatusInternalServerError]; n < 70 || n > 130 || n+got.status[http.StatusOK] != 200 {
			t.Errorf("200 requests: %v; want about half 500, the rest 200", got)
		}
	})
	t.Run("delay", func(t *testing.T) {
		for range 3 {
			a, err := do(ctx, m.c, fault("delay"))
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusOK || a.elapsed < time.Second {
				t.Errorf("status %d after %s; want 200 after the 1s delay", a.status, a.elapsed)
			}
		}
	})
	t.Run("no fault", func(t *testing.T) {
		got, err := send(ctx, m.c, request{target: "http://echo:8080/"}, 20)
		if err != nil {
			t.Fatal(err)
		}
		if got.status[http.StatusOK] != 20 {
			t.Errorf("20 requests without x-fault: %v; want all 200", got)
		}
	})
}

// Istio's "Request timeouts" task: a 0.5s timeout on a backend that takes 2s
// answers 504 long before the backend would have.
func TestRequestTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1", "delay=2s")+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-patient: {exact: "yes"}}}]
    route: [{destination: {host: echo}}]
  - timeout: 0.5s
    route: [{destination: {host: echo}}]
`)
	// The app answers at once when the query asks for no delay.
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/?delay=0s"}, http.StatusOK, "")

	t.Run("timeout answers 504", func(t *testing.T) {
		for range 3 {
			a, err := do(ctx, m.c, request{target: "http://echo:8080/"})
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusGatewayTimeout || a.elapsed < 400*time.Millisecond || a.elapsed > 1500*time.Millisecond {
				t.Errorf("status %d after %s; want 504 after about 0.5s (0.4s..1.5s), well before the backend's 2s", a.status, a.elapsed)
			}
		}
	})
	t.Run("no timeout waits for the backend", func(t *testing.T) {
		a, err := do(ctx, m.c, request{target: "http://echo:8080/", header: http.Header{"X-Patient": {"yes"}}})
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK || a.elapsed < 2*time.Second {
			t.Errorf("status %d after %s; want 200 after the backend's 2s", a.status, a.elapsed)
		}
	})
	t.Run("flagged UT", func(t *testing.T) {
		n, err := statSum(ctx, m.st.workload(t, "client"), "cluster.outbound|8080||echo.", ".rq_flag_UT")
		if err != nil {
			t.Fatal(err)
		}
		if n < 3 {
			t.Errorf("client sidecar counted %d UT answers on echo's cluster, want at least the 3 timeouts", n)
		}
	})
}

// Retries on 5xx hide a backend that fails half its requests.
func TestRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1", "status=503:50")+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-retries: {exact: "0"}}}]
    retries: {attempts: 0}
    route: [{destination: {host: echo}}]
  - match: [{headers: {x-retries: {exact: "3"}}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: echo}}]
  - match: [{headers: {x-retries: {exact: default}}}]
    route: [{destination: {host: echo}}]
  - retries: {attempts: 8, retryOn: 5xx, perTryTimeout: 2s}
    route: [{destination: {host: echo}}]
`)
	retries := func(n string) request {
		return request{target: "http://echo:8080/", header: http.Header{"X-Retries": {n}}}
	}
	// The app answers 200 when the query asks for it.
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/?status=200"}, http.StatusOK, "")

	tests := []struct {
		name     string
		req      request
		min, max int // of 100 requests, how many 200s
	}{
		// Each try fails with probability 1/2: no retries succeed about 50 times
		// in 100, 3 retries 93.75 (a failure needs 4 failed tries), 8 retries 99.8.
		// Istio's default policy, when a route sets none: 2 retries on 503 (87.5).
		{name: "no retries", req: retries("0"), min: 25, max: 75},
		{name: "default policy", req: retries("default"), min: 70, max: 100},
		{name: "3 retries", req: retries("3"), min: 85, max: 100},
		{name: "8 retries look healthy", req: request{target: "http://echo:8080/"}, min: 97, max: 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := send(ctx, m.c, tt.req, 100)
			if err != nil {
				t.Fatal(err)
			}
			if n := got.status[http.StatusOK]; n < tt.min || n > tt.max || n+got.status[http.StatusServiceUnavailable] != 100 {
				t.Errorf("100 requests: %v; want %d..%d 200s, the rest 503", got, tt.min, tt.max)
			}
		})
	}
	t.Run("retry budget", func(t *testing.T) {
		// Eight clients against an outage (every try fails, slowly): the default
		// budget lets at most 3 retries (or 20% of the requests) be in flight, so
		// most retries are refused and the outage is not multiplied.
		client := m.st.workload(t, "client")
		before, err := statSum(ctx, client, "cluster.outbound|8080||echo.", ".upstream_rq_retry_overflow")
		if err != nil {
			t.Fatal(err)
		}
		const clients, each = 8, 4
		tallies := make([]tally, clients)
		errs := make([]error, clients)
		concurrently(clients, func(i int) {
			tallies[i], errs[i] = send(ctx, proxyClient(m.outbound), request{target: "http://echo:8080/?status=503&delay=100ms", header: http.Header{"X-Retries": {"3"}}}, each)
		})
		for i := range clients {
			if errs[i] != nil {
				t.Fatalf("client %d: %v", i, errs[i])
			}
			if tallies[i].status[http.StatusServiceUnavailable] != each {
				t.Errorf("client %d: %v; want only 503", i, tallies[i])
			}
		}
		after, err := statSum(ctx, client, "cluster.outbound|8080||echo.", ".upstream_rq_retry_overflow")
		if err != nil {
			t.Fatal(err)
		}
		if after == before {
			t.Errorf("client sidecar refused no retry of %d concurrent clients; want the retry budget to refuse some", clients)
		}
	})
	t.Run("retries counted", func(t *testing.T) {
		n, err := statSum(ctx, m.st.workload(t, "client"), "cluster.outbound|8080||echo.", ".upstream_rq_retry")
		if err != nil {
			t.Fatal(err)
		}
		if n < 50 {
			t.Errorf("client sidecar counted %d retries, want about 150 (at least 50)", n)
		}
	})
}

// Outlier detection ejects the endpoint that fails and the healthy one takes the
// traffic.
func TestOutlierDetection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// v2 fails every request with 500 (the sidecar itself never answers 500 here).
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+httpEcho("echo-v2", "echo", "v2", "status=500")+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 200ms
      baseEjectionTime: 3m
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: echo}}]
`)
	r := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v1")
	waitAnswer(ctx, t, m.c, r, http.StatusInternalServerError, "") // v2 is an endpoint, and failing

	// Ejected: ten answers in a row from v1.
	eventually(ctx, t, "v2 ejected", func() error {
		got, err := send(ctx, m.c, r, 10)
		if err != nil {
			return err
		}
		if got.versions["v1"] != 10 {
			return fmt.Errorf("10 requests: %v", got)
		}
		return nil
	})
	got, err := send(ctx, m.c, r, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := got.versions["v1"]; n < 95 {
		t.Errorf("after the ejection, 100 requests: %v; want at least 95 200s from v1", got)
	}
}

// Istio's "Circuit breaking" task: with one connection and one pending request
// allowed, four concurrent clients overflow and some get 503.
func TestCircuitBreaking(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1", "delay=50ms")+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
`)
	r := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v1")

	const clients, each = 4, 20
	tallies := make([]tally, clients)
	errs := make([]error, clients)
	concurrently(clients, func(i int) {
		// Each client has its own connection to the sidecar.
		tallies[i], errs[i] = send(ctx, proxyClient(m.outbound), r, each)
	})
	total := map[int]int{}
	for i := range clients {
		if errs[i] != nil {
			t.Fatalf("client %d: %v", i, errs[i])
		}
		for code, n := range tallies[i].status {
			total[code] += n
		}
	}
	if total[http.StatusServiceUnavailable] == 0 || total[http.StatusOK] == 0 || total[http.StatusOK]+total[http.StatusServiceUnavailable] != clients*each {
		t.Errorf("%d concurrent clients, %d requests each: statuses %v; want some 200 and some 503, nothing else", clients, each, total)
	}
	n, err := statSum(ctx, m.st.workload(t, "client"), "cluster.outbound|8080||echo.", ".rq_flag_UO")
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("client sidecar counted no overflow (UO) on echo's cluster")
	}
}

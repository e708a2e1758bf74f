package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// lbService is a Service selecting both versions of echo, with a DestinationRule
// whose loadBalancer is lb (YAML flow mapping).
func lbService(name, lb string) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s}
spec:
  host: %s
  trafficPolicy: {loadBalancer: %s}
`, name, name, name, lb)
}

// A DestinationRule's loadBalancer: the simple policies spread requests over both
// endpoints; consistent hashing keeps each key on one of them. Each policy is a
// Service of its own over the same two workloads of echo.
func TestLoadBalancers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+httpEcho("echo-v2", "echo", "v2")+
		lbService("round-robin", "{simple: ROUND_ROBIN}")+
		lbService("random", "{simple: RANDOM}")+
		lbService("least-request", "{simple: LEAST_REQUEST}")+
		lbService("by-header", "{consistentHash: {httpHeaderName: x-user}}")+
		lbService("by-cookie", "{consistentHash: {httpCookie: {name: user, ttl: 60s}}}")+
		lbService("by-query", "{consistentHash: {httpQueryParameterName: user}}")+
		lbService("by-source", "{consistentHash: {useSourceIp: true}}"))
	apps := []workloadState{m.st.workload(t, "echo-v1"), m.st.workload(t, "echo-v2")}
	for _, svc := range []string{"round-robin", "random", "least-request"} {
		eventually(ctx, t, "both versions behind "+svc, func() error {
			got, err := send(ctx, m.c, request{target: "http://" + svc + ":8080/"}, 10)
			if err == nil && (got.versions["v1"] == 0 || got.versions["v2"] == 0) {
				err = fmt.Errorf("10 requests: %v", got)
			}
			return err
		})
	}

	t.Run("simple", func(t *testing.T) {
		tests := []struct {
			svc      string
			min, max int // of 200 requests, how many each version answers
		}{
			{svc: "round-robin", min: 90, max: 110},
			{svc: "random", min: 60, max: 140}, // 100 ± 5.6 standard deviations
			{svc: "least-request", min: 40, max: 160},
		}
		for _, tt := range tests {
			t.Run(tt.svc, func(t *testing.T) {
				got, err := send(ctx, m.c, request{target: "http://" + tt.svc + ":8080/"}, 200)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range []string{"v1", "v2"} {
					if n := got.versions[v]; n < tt.min || n > tt.max {
						t.Errorf("200 requests: %v; want %d..%d from each version", got, tt.min, tt.max)
						break
					}
				}
			})
		}
	})

	// sticky sends 10 requests for each of 20 keys and checks that each key stays
	// on one version and that the keys spread over both.
	sticky := func(t *testing.T, key func(i int) request) {
		t.Helper()
		eventually(ctx, t, "keys on both versions", func() error {
			seen := map[string]bool{}
			for i := range 20 {
				a, err := do(ctx, m.c, key(i))
				if err != nil {
					return err
				}
				seen[a.version] = true
			}
			if !seen["v1"] || !seen["v2"] {
				return fmt.Errorf("20 keys reached versions %v", seen)
			}
			return nil
		})
		spread := map[string]int{}
		for i := range 20 {
			got, err := send(ctx, m.c, key(i), 10)
			if err != nil {
				t.Fatal(err)
			}
			if got.status[http.StatusOK] != 10 || len(got.versions) != 1 {
				t.Errorf("key %d, 10 requests: %v; want all 200 from one version", i, got)
			}
			for v := range got.versions {
				spread[v]++
			}
		}
		if spread["v1"] == 0 || spread["v2"] == 0 {
			t.Errorf("20 keys stuck to versions %v; want keys on both", spread)
		}
	}
	t.Run("consistent hash by header", func(t *testing.T) {
		sticky(t, func(i int) request {
			return request{target: "http://by-header:8080/", header: http.Header{"X-User": {fmt.Sprintf("user-%d", i)}}}
		})
	})
	t.Run("consistent hash by cookie", func(t *testing.T) {
		sticky(t, func(i int) request {
			return request{target: "http://by-cookie:8080/", header: http.Header{"Cookie": {fmt.Sprintf("user=u%d", i)}}}
		})
		// Without the cookie, the sidecar makes one up and sets it.
		a, err := do(ctx, m.c, request{target: "http://by-cookie:8080/"})
		if err != nil {
			t.Fatal(err)
		}
		if c := a.header.Get("Set-Cookie"); a.status != http.StatusOK || !strings.HasPrefix(c, "user=") || !strings.Contains(c, "Max-Age=60") {
			t.Errorf("status %d, Set-Cookie %q; want 200 and a cookie user=... with Max-Age=60", a.status, c)
		}
	})
	t.Run("consistent hash by query parameter", func(t *testing.T) {
		// A query turns off the apps' X-Version: count at their sidecars instead.
		spread := map[string]int{}
		for i := range 10 {
			r := request{target: fmt.Sprintf("http://by-query:8080/?user=u%d", i)}
			got := served(ctx, t, apps, 10, func() error {
				tl, err := send(ctx, m.c, r, 10)
				if err == nil && tl.status[http.StatusOK] != 10 {
					err = fmt.Errorf("10 requests: %v", tl)
				}
				return err
			})
			if got["echo-v1"] != 10 && got["echo-v2"] != 10 {
				t.Errorf("user u%d, 10 requests reached %v; want all at one version", i, got)
			}
			for name, n := range got {
				if n == 10 {
					spread[name]++
				}
			}
		}
		if len(spread) != 2 {
			t.Errorf("10 users stuck to %v; want users on both versions", spread)
		}
	})
	t.Run("consistent hash by source IP", func(t *testing.T) {
		// Every request comes from 127.0.0.1: all to one version.
		got, err := send(ctx, m.c, request{target: "http://by-source:8080/"}, 50)
		if err != nil {
			t.Fatal(err)
		}
		if got.status[http.StatusOK] != 50 || len(got.versions) != 1 {
			t.Errorf("50 requests from one address: %v; want all 200 from one version", got)
		}
	})
}

package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// twoVersions is service echo in versions v1 and v2, with a DestinationRule
// defining both subsets.
func twoVersions() string {
	return httpEcho("echo-v1", "echo", "v1") + httpEcho("echo-v2", "echo", "v2") + versionSubsets("echo")
}

// Istio's "Request routing" task: requests of user jason go to v2, all others to v1.
func TestRequestRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, twoVersions()+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: echo, subset: v2}
  - route:
    - destination: {host: echo, subset: v1}
`)
	jason := request{target: "http://echo:8080/", header: http.Header{"End-User": {"jason"}}}
	others := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, jason, http.StatusOK, "v2")
	waitAnswer(ctx, t, m.c, others, http.StatusOK, "v1")

	tests := []struct {
		name string
		req  request
		want string // the only version that may answer
	}{
		{name: "end-user jason to v2", req: jason, want: "v2"},
		{name: "no end-user to v1", req: others, want: "v1"},
		{name: "another end-user to v1", req: request{target: "http://echo:8080/", header: http.Header{"End-User": {"mary"}}}, want: "v1"},
		{name: "header value is case-sensitive", req: request{target: "http://echo:8080/", header: http.Header{"End-User": {"Jason"}}}, want: "v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := send(ctx, m.c, tt.req, 50)
			if err != nil {
				t.Fatal(err)
			}
			if got.status[http.StatusOK] != 50 || got.versions[tt.want] != 50 {
				t.Errorf("50 requests: %v; want all 200 from %s", got, tt.want)
			}
		})
	}
}

// Istio's "Traffic shifting" task: 80% to v1, 20% to v2.
func TestTrafficShifting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, twoVersions()+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - route:
    - {destination: {host: echo, subset: v1}, weight: 80}
    - {destination: {host: echo, subset: v2}, weight: 20}
`)
	r := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v2") // both subsets have their endpoint

	got, err := send(ctx, m.c, r, 300)
	if err != nil {
		t.Fatal(err)
	}
	if got.status[http.StatusOK] != 300 || got.versions["v1"]+got.versions["v2"] != 300 {
		t.Fatalf("300 requests: %v; want all 200 from v1 or v2", got)
	}
	if s := got.share("v1"); s < 65 || s > 92 {
		t.Errorf("300 requests: %v; v1 answered %.0f%%, want about 80%% (65..92)", got, s)
	}
}

// Header changes, a URI and authority rewrite, and a redirect on one service.
func TestHeadersRewriteRedirect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{uri: {prefix: /old-place}}]
    redirect: {uri: /new-place, authority: elsewhere, port: 9090}
  - match: [{uri: {prefix: /old-host}}]
    redirect: {authority: "elsewhere:8080", redirectCode: 302}
  - match: [{uri: {prefix: /legacy}}]
    rewrite: {uri: /debug, authority: rewritten.example}
    route: [{destination: {host: echo}}]
  - headers:
      request:
        set: {x-mesh-request: "set by the mesh"}
        remove: [x-secret]
      response:
        add: {x-mesh-response: trellis}
        remove: [x-version]
    route: [{destination: {host: echo}}]
`)
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/debug"}, http.StatusOK, "")

	t.Run("redirect", func(t *testing.T) {
		tests := []struct {
			name, target string
			status       int
			location     string
		}{
			{name: "path, host and port", target: "http://echo:8080/old-place", status: http.StatusMovedPermanently, location: "http://elsewhere:9090/new-place"},
			// Envoy's host_redirect replaces the whole authority, port included.
			{name: "authority with a port", target: "http://echo:8080/old-host/a?b=c", status: http.StatusFound, location: "http://elsewhere:8080/old-host/a?b=c"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a, err := do(ctx, m.c, request{target: tt.target})
				if err != nil {
					t.Fatal(err)
				}
				if a.status != tt.status || a.header.Get("Location") != tt.location {
					t.Errorf("status %d, Location %q; want %d to %s", a.status, a.header.Get("Location"), tt.status, tt.location)
				}
			})
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		// fortio's /debug answers with the request as the app received it.
		a, err := do(ctx, m.c, request{target: "http://echo:8080/legacy"})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"GET /debug HTTP/1.1", "Host: rewritten.example"} {
			if a.status != http.StatusOK || !strings.Contains(a.body, want) {
				t.Errorf("status %d, the app received:\n%s\nwant 200 and %q", a.status, a.body, want)
			}
		}
	})
	t.Run("request headers", func(t *testing.T) {
		a, err := do(ctx, m.c, request{target: "http://echo:8080/debug", header: http.Header{"X-Secret": {"s3cr3t"}, "X-Mesh-Request": {"from the client"}}})
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK || !strings.Contains(a.body, "X-Mesh-Request: set by the mesh") ||
			strings.Contains(a.body, "from the client") || strings.Contains(a.body, "s3cr3t") {
			t.Errorf("status %d, the app received:\n%s\nwant X-Mesh-Request set by the mesh and no X-Secret", a.status, a.body)
		}
	})
	t.Run("response headers", func(t *testing.T) {
		a, err := do(ctx, m.c, request{target: "http://echo:8080/"})
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusOK || a.header.Get("X-Mesh-Response") != "trellis" || a.header.Get("X-Version") != "" {
			t.Errorf("status %d, headers %v; want X-Mesh-Response: trellis and no X-Version", a.status, a.header)
		}
	})
}

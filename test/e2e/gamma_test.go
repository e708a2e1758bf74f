package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// versionServices are Services echo-v1 and echo-v2, each selecting one version of
// echo, for Gateway API backendRefs.
const versionServices = `---
apiVersion: v1
kind: Service
metadata: {name: echo-v1}
spec:
  selector: {app: echo, version: v1}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2}
spec:
  selector: {app: echo, version: v2}
  ports: [{name: http, port: 8080}]
`

// Gateway API in mesh mode: an HTTPRoute whose parent is the Service echo routes by
// header, splits by backendRef weights, changes headers and bounds the request time.
func TestGatewayAPIRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+httpEcho("echo-v2", "echo", "v2")+versionServices+`---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo}
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 8080}
  rules:
  - matches:
    - headers: [{name: end-user, value: jason}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-route, value: jason}]}
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches:
    - headers: [{name: x-timeout, value: "yes"}]
    timeouts: {request: 500ms}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /legacy}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /debug}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-mesh-request, value: set by the route}]}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /old-place}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: elsewhere, port: 9090, path: {type: ReplaceFullPath, replaceFullPath: /new-place}, statusCode: 301}
  - matches: [{path: {type: PathPrefix, value: /mirrored}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: echo-v2, port: 8080}}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /flaky}}]
    retry: {attempts: 8, codes: [503], backoff: 10ms}
    backendRefs: [{name: echo-v1, port: 8080}]
  - backendRefs:
    - {name: echo-v1, port: 8080, weight: 80}
    - {name: echo-v2, port: 8080, weight: 20}
`)
	jason := request{target: "http://echo:8080/", header: http.Header{"End-User": {"jason"}}}
	others := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, jason, http.StatusOK, "v2")
	waitAnswer(ctx, t, m.c, others, http.StatusOK, "v1")

	t.Run("header match", func(t *testing.T) {
		for range 50 {
			a, err := do(ctx, m.c, jason)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusOK || a.version != "v2" || a.header.Get("X-Route") != "jason" {
				t.Fatalf("status %d from version %q, X-Route %q; want 200 from v2 with X-Route: jason", a.status, a.version, a.header.Get("X-Route"))
			}
		}
	})
	t.Run("weighted backendRefs", func(t *testing.T) {
		got, err := send(ctx, m.c, others, 300)
		if err != nil {
			t.Fatal(err)
		}
		if got.status[http.StatusOK] != 300 {
			t.Fatalf("300 requests: %v; want all 200", got)
		}
		if s := got.share("v1"); s < 65 || s > 92 {
			t.Errorf("300 requests: %v; v1 answered %.0f%%, want about 80%% (65..92)", got, s)
		}
	})
	t.Run("request timeout", func(t *testing.T) {
		a, err := do(ctx, m.c, request{target: "http://echo:8080/?delay=2s", header: http.Header{"X-Timeout": {"yes"}}})
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusGatewayTimeout || a.elapsed > 1500*time.Millisecond {
			t.Errorf("status %d after %s; want 504 after about 0.5s, well before the backend's 2s", a.status, a.elapsed)
		}
	})
	t.Run("filters", func(t *testing.T) {
		a, err := do(ctx, m.c, request{target: "http://echo:8080/legacy"})
		if err != nil {
			t.Fatal(err)
		}
		// fortio's /debug answers with the request as the app received it.
		for _, want := range []string{"GET /debug HTTP/1.1", "Host: rewritten.example", "X-Mesh-Request: set by the route"} {
			if a.status != http.StatusOK || !strings.Contains(a.body, want) {
				t.Errorf("URLRewrite and RequestHeaderModifier: status %d, the app received:\n%s\nwant 200 and %q", a.status, a.body, want)
			}
		}
		a, err = do(ctx, m.c, request{target: "http://echo:8080/old-place/x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := "http://elsewhere:9090/new-place"; a.status != http.StatusMovedPermanently || a.header.Get("Location") != want {
			t.Errorf("RequestRedirect: status %d, Location %q; want 301 to %s", a.status, a.header.Get("Location"), want)
		}
	})
	t.Run("mirror", func(t *testing.T) {
		apps := []workloadState{m.st.workload(t, "echo-v1"), m.st.workload(t, "echo-v2")}
		got := served(ctx, t, apps, 40, func() error {
			tl, err := send(ctx, m.c, request{target: "http://echo:8080/mirrored"}, 20)
			if err == nil && tl.versions["v1"] != 20 {
				err = fmt.Errorf("20 requests: %v; want all 200 from v1", tl)
			}
			return err
		})
		if got["echo-v1"] != 20 || got["echo-v2"] != 20 {
			t.Errorf("20 mirrored requests reached %v; want 20 at echo-v1 and their 20 copies at echo-v2", got)
		}
	})
	t.Run("retry", func(t *testing.T) {
		// The query asks the app to fail half the requests; 8 retries hide it.
		got, err := send(ctx, m.c, request{target: "http://echo:8080/flaky?status=503:50"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n := got.status[http.StatusOK]; n < 97 {
			t.Errorf("100 requests: %v; want at least 97 200s", got)
		}
	})
}

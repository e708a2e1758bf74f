package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A VirtualService corsPolicy: the sidecar answers preflights and adds the CORS
// headers for allowed origins only.
func TestCORS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo-v1", "echo", "v1")+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}, {prefix: "https://admin."}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      exposeHeaders: [x-version]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: echo}}]
`)
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/"}, http.StatusOK, "v1")
	preflight := func(origin string) request {
		return request{method: http.MethodOptions, target: "http://echo:8080/", header: http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"x-user"},
		}}
	}
	eventually(ctx, t, "the CORS policy in force", func() error {
		a, err := do(ctx, m.c, preflight("https://shop.example"))
		if err == nil && a.header.Get("Access-Control-Allow-Origin") == "" {
			err = errors.New("no Access-Control-Allow-Origin yet")
		}
		return err
	})

	tests := []struct {
		name       string
		req        request
		wantHeader map[string]string // "" means absent; values match case-insensitively, as substrings
	}{
		{
			name: "preflight from an allowed origin",
			req:  preflight("https://shop.example"),
			wantHeader: map[string]string{
				"Access-Control-Allow-Origin":      "https://shop.example",
				"Access-Control-Allow-Methods":     "POST",
				"Access-Control-Allow-Headers":     "x-user",
				"Access-Control-Max-Age":           "86400",
				"Access-Control-Allow-Credentials": "true",
			},
		},
		{
			name:       "preflight from an origin matching a prefix",
			req:        preflight("https://admin.shop.example"),
			wantHeader: map[string]string{"Access-Control-Allow-Origin": "https://admin.shop.example"},
		},
		{
			name: "request from an allowed origin",
			req:  request{target: "http://echo:8080/", header: http.Header{"Origin": {"https://shop.example"}}},
			wantHeader: map[string]string{
				"Access-Control-Allow-Origin":   "https://shop.example",
				"Access-Control-Expose-Headers": "x-version",
				"X-Version":                     "v1",
			},
		},
		{
			name:       "request from another origin",
			req:        request{target: "http://echo:8080/", header: http.Header{"Origin": {"https://evil.example"}}},
			wantHeader: map[string]string{"Access-Control-Allow-Origin": "", "X-Version": "v1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := do(ctx, m.c, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusOK {
				t.Errorf("status %d, want 200", a.status)
			}
			for name, want := range tt.wantHeader {
				got := a.header.Get(name)
				if want == "" && got != "" || !strings.Contains(strings.ToLower(got), strings.ToLower(want)) {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
		})
	}
}

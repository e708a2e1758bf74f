package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// Authorization and request authentication (issue 5) in local mode: the policies
// are enforced by echo's sidecar, behind mutual TLS from the client's.

// otherClient is a client-only workload with service account "other" and its own
// outbound listener.
func otherClient(outbound string) string {
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: other, labels: {app: other}}
spec:
  serviceAccount: other
  outbound: %q
`, outbound)
}

func TestAuthzAllowByIdentityAndMethod(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	otherOut := freeAddr(t)
	m := startMesh(ctx, t, httpEcho("echo", "echo", "v1")+otherClient(otherOut)+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-get}
spec:
  selector: {matchLabels: {app: echo}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/default"]}}]
    to: [{operation: {methods: ["GET"]}}]
`)
	get := request{target: "http://echo:8080/"}
	waitAnswer(ctx, t, m.c, get, http.StatusOK, "v1")
	other := proxyClient(otherOut)
	// The other sidecar's configuration converges on its own: echo's endpoint
	// reaches it once echo's sidecar serves.
	waitAnswer(ctx, t, other, get, http.StatusForbidden, "")
	tests := []struct {
		name   string
		c      *http.Client
		req    request
		status int
	}{
		{"GET from the allowed identity", m.c, get, http.StatusOK},
		{"POST from the allowed identity", m.c, request{method: http.MethodPost, target: get.target}, http.StatusForbidden},
		{"lower-case get is another method", m.c, request{method: "get", target: get.target}, http.StatusForbidden},
		{"GET from another identity", other, get, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := do(ctx, tt.c, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %.200s", a.status, tt.status, a.body)
			}
			if tt.status == http.StatusForbidden && a.body != "RBAC: access denied" {
				t.Errorf("body %q, want %q", a.body, "RBAC: access denied")
			}
		})
	}
	// A plaintext request straight to echo's inbound listener has no identity.
	status, body, err := plaintextGet(ctx, m.st.workload(t, "echo").InboundPorts["http"], nil)
	if err != nil || status != http.StatusForbidden {
		t.Errorf("plaintext GET to the inbound listener: %d %q %v, want 403", status, body, err)
	}
}

// adminTricks is the regression corpus of path tricks aimed at /admin.
func adminTricks(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../internal/proxy/authz/testdata/admin-tricks.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "# ") && line != "#" {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatal("empty corpus")
	}
	return out
}

// rawGet sends target as it is in the request line of a GET to addr with host,
// and returns the status.
func rawGet(ctx context.Context, addr, host, target string) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestAuthzDenyHoldsAgainstPathTricks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("echo", "echo", "v1")+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin", "/admin/*"]}}]
`)
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/admin"}, http.StatusForbidden, "")
	inbound := m.st.workload(t, "echo").InboundPorts["http"]
	for _, via := range []struct{ name, addr, host string }{
		{"through the client sidecar", m.outbound, "echo:8080"},
		{"straight to the inbound listener", inbound, "echo:8080"},
	} {
		t.Run(via.name, func(t *testing.T) {
			for _, target := range []string{"/public", "/adminx", "/%2561dmin", "/x/admin"} {
				if status, err := rawGet(ctx, via.addr, via.host, target); err != nil || status != http.StatusOK {
					t.Errorf("GET %s: %d %v, want 200", target, status, err)
				}
			}
			for _, target := range adminTricks(t) {
				status, err := rawGet(ctx, via.addr, via.host, target)
				if err != nil {
					t.Errorf("GET %s: %v", target, err)
					continue
				}
				if status != http.StatusForbidden && status != http.StatusBadRequest {
					t.Errorf("GET %s: status %d, want 403 (or 400)", target, status)
				}
			}
		})
	}
}

// jwtKey is a signing key and the JWKS that publishes it.
type jwtKey struct {
	key  *rsa.PrivateKey
	kid  string
	jwks string
}

func newJWTKey(t *testing.T, kid string) jwtKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return jwtKey{key: k, kid: kid, jwks: string(b)}
}

func (k jwtKey) sign(t *testing.T, claims josejwt.Claims) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthzRequestAuthentication(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const issuer = "https://issuer.trellis.test"
	key := newJWTKey(t, "k1")
	impostor := newJWTKey(t, "k1") // same kid, another key
	m := startMesh(ctx, t, httpEcho("echo", "echo", "v1")+fmt.Sprintf(`---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector: {matchLabels: {app: echo}}
  jwtRules:
  - issuer: %q
    audiences: [echo]
    jwks: '%s'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - from: [{source: {requestPrincipals: ["%s/alice"]}}]
`, issuer, key.jwks, issuer))
	now := time.Now()
	claims := func(sub string, exp time.Time, aud string) josejwt.Claims {
		return josejwt.Claims{Issuer: issuer, Subject: sub, Audience: josejwt.Audience{aud},
			IssuedAt: josejwt.NewNumericDate(now.Add(-time.Hour)), Expiry: josejwt.NewNumericDate(exp)}
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	valid := key.sign(t, claims("alice", now.Add(time.Hour), "echo"))
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/", header: bearer(valid)}, http.StatusOK, "v1")
	tests := []struct {
		name   string
		header http.Header
		target string
		status int
	}{
		{"valid token", bearer(valid), "", http.StatusOK},
		{"valid token in access_token", nil, "/?access_token=" + valid, http.StatusOK},
		{"expired token", bearer(key.sign(t, claims("alice", now.Add(-time.Hour), "echo"))), "", http.StatusUnauthorized},
		{"wrongly signed token", bearer(impostor.sign(t, claims("alice", now.Add(time.Hour), "echo"))), "", http.StatusUnauthorized},
		{"wrong audience", bearer(key.sign(t, claims("alice", now.Add(time.Hour), "other"))), "", http.StatusUnauthorized},
		{"garbage token", bearer("not.a.jwt"), "", http.StatusUnauthorized},
		{"valid token of another subject", bearer(key.sign(t, claims("bob", now.Add(time.Hour), "echo"))), "", http.StatusForbidden},
		{"no token", nil, "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := do(ctx, m.c, request{target: "http://echo:8080" + cmpOr(tt.target, "/"), header: tt.header})
			if err != nil {
				t.Fatal(err)
			}
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %.200s", a.status, tt.status, a.body)
			}
			if tt.status == http.StatusUnauthorized && !strings.Contains(a.header.Get("Www-Authenticate"), `error="invalid_token"`) {
				t.Errorf("www-authenticate %q", a.header.Get("Www-Authenticate"))
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// testAuthorizer is an envoy.service.auth.v3 Authorization server: it allows a
// request carrying x-allow: yes (adding x-authorized: yes to it) and denies the
// others with 418 and a body.
type testAuthorizer struct {
	authv3.UnimplementedAuthorizationServer
	checks atomic.Int64
	last   atomic.Pointer[authv3.CheckRequest]
}

func (s *testAuthorizer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.checks.Add(1)
	s.last.Store(req)
	if req.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-allow"] == "yes" {
		return &authv3.CheckResponse{
			Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-authorized", Value: "yes"}}},
			}},
		}, nil
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-denied-by", Value: "test"}}},
			Body:    "denied by the test authorizer",
		}},
	}, nil
}

func TestAuthzCustomExternalAuthorizer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	authorizer := &testAuthorizer{}
	authv3.RegisterAuthorizationServer(srv, authorizer)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	m := startMeshFlags(ctx, t, httpEcho("echo", "echo", "v1")+`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext}
spec:
  selector: {matchLabels: {app: echo}}
  action: CUSTOM
  provider: {name: test-authz}
  rules:
  - to: [{operation: {paths: ["/custom/*"]}}]
`, []string{"--ext-authz", "test-authz=" + lis.Addr().String()})
	allow := http.Header{"X-Allow": {"yes"}}
	waitAnswer(ctx, t, m.c, request{target: "http://echo:8080/custom/a", header: allow}, http.StatusOK, "v1")

	before := authorizer.checks.Load()
	a, err := do(ctx, m.c, request{target: "http://echo:8080/public"})
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("GET /public: %v %d %.200s", err, a.status, a.body)
	}
	if n := authorizer.checks.Load(); n != before {
		t.Errorf("a request no CUSTOM rule matches was checked (%d checks)", n-before)
	}

	a, err = do(ctx, m.c, request{target: "http://echo:8080/custom/b?q=1", header: allow})
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("allowed GET: %v %d %.200s", err, a.status, a.body)
	}
	hr := authorizer.last.Load().GetAttributes().GetRequest().GetHttp()
	if hr.GetPath() != "/custom/b?q=1" || hr.GetMethod() != "GET" || hr.GetHeaders()["x-allow"] != "yes" {
		t.Errorf("check request: path %q method %q headers %v", hr.GetPath(), hr.GetMethod(), hr.GetHeaders())
	}
	if p := authorizer.last.Load().GetAttributes().GetSource().GetPrincipal(); p != clientSPIFFE {
		t.Errorf("source principal %q, want %q", p, clientSPIFFE)
	}

	a, err = do(ctx, m.c, request{target: "http://echo:8080/custom/b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.status != 403 || a.body != "denied by the test authorizer" || a.header.Get("X-Denied-By") != "test" {
		t.Errorf("denied GET: %d %q %v", a.status, a.body, a.header)
	}

	// Fail closed: with the authorizer gone, matching requests are refused.
	srv.Stop()
	a, err = do(ctx, m.c, request{target: "http://echo:8080/custom/c", header: allow})
	if err != nil || a.status != 403 {
		t.Errorf("with the authorizer down: %v %d, want 403", err, a.status)
	}
}

func TestAuthzTCPConnectionsClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	clientBind, otherBind := freeAddr(t), freeAddr(t)
	startMesh(ctx, t, tcpEchoApp("tcp-echo", "tcp-echo", "v1")+fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: other, labels: {app: other}}
spec:
  serviceAccount: other
  upstreams:
  - {service: tcp-echo, port: 9000, bind: %q}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: not-other}
spec:
  selector: {matchLabels: {app: tcp-echo}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/other"]}}]
`, otherBind), fmt.Sprintf("{service: tcp-echo, port: 9000, bind: %q}", clientBind))
	eventually(ctx, t, "an echo for the allowed identity", func() error {
		return tcpEcho(ctx, clientBind, "hello\n")
	})
	// The other workload's sidecar accepts the connection and its mutual TLS
	// connection to tcp-echo's sidecar, which closes it before a byte reaches the
	// app.
	eventually(ctx, t, "the denied identity's connection accepted, then closed", func() error {
		err := tcpEcho(ctx, otherBind, "hello\n")
		if err == nil {
			t.Fatal("the denied identity got an echo")
		}
		if strings.Contains(err.Error(), "reading the echo") {
			return nil
		}
		return err
	})
}

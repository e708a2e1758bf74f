package extauthz

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/authz"
)

// authorizer answers by the request's path: /allow, /deny, /slow (waits for the
// caller to give up).
type authorizer struct {
	authv3.UnimplementedAuthorizationServer
	seen chan *authv3.CheckRequest
}

func (a *authorizer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.seen <- req
	switch req.GetAttributes().GetRequest().GetHttp().GetPath() {
	case "/allow?x=1":
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{
					{Header: &corev3.HeaderValue{Key: "x-user", Value: "alice"}},
					{Header: &corev3.HeaderValue{Key: "x-tag", Value: "b"}, Append: wrapperspb.Bool(true)},
				},
				HeadersToRemove:      []string{"x-secret"},
				ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-checked", Value: "yes"}}},
			}}}, nil
	case "/slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized}, Body: "no",
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-reason", Value: "test"}}},
		}}}, nil
}

func TestCheck(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	a := &authorizer{seen: make(chan *authv3.CheckRequest, 10)}
	authv3.RegisterAuthorizationServer(srv, a)
	go srv.Serve(lis)
	defer srv.Stop()
	c := NewClient(slog.New(slog.DiscardHandler))
	defer c.Close()

	check := func(path string, timeout time.Duration) (Decision, error) {
		r := httptest.NewRequest(http.MethodGet, "http://echo"+path, nil)
		r.Header.Add("X-Tag", "a")
		r.Header.Add("X-Tag", "c")
		r.Header.Set("X-Secret", "s")
		ar := &authz.Request{HTTP: true, Method: "GET", Authority: "echo", Scheme: "http", PathQuery: path, Remote: netip.MustParseAddr("127.0.0.1")}
		req := HTTPRequest(r, ar, Peer{Address: "127.0.0.1:5000", Principal: "spiffe://cluster.local/ns/default/sa/client"},
			Peer{Address: "127.0.0.1:8080"}, "id1", time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := c.Check(ctx, lis.Addr().String(), req)
		if err != nil {
			return Decision{}, err
		}
		d := Decide(resp)
		if d.Allowed {
			Apply(r.Header, d.RequestHeaders)
			for _, h := range d.RemoveHeaders {
				r.Header.Del(h)
			}
			want := http.Header{"X-User": {"alice"}, "X-Tag": {"a", "c", "b"}}
			if diff := cmp.Diff(want, r.Header); diff != "" {
				t.Errorf("request headers (-want +got):\n%s", diff)
			}
		}
		return d, nil
	}

	d, err := check("/allow?x=1", 5*time.Second)
	if err != nil || !d.Allowed {
		t.Fatalf("allow: %+v %v", d, err)
	}
	got := <-a.seen
	h := got.GetAttributes().GetRequest().GetHttp()
	if h.GetHeaders()["x-tag"] != "a,c" || h.GetHeaders()[":path"] != "/allow?x=1" || got.GetAttributes().GetSource().GetPrincipal() == "" {
		t.Errorf("check request: %v", got)
	}
	if diff := cmp.Diff([]HeaderOp{{Name: "x-checked", Value: "yes", Append: true}}, d.ResponseHeaders); diff != "" {
		t.Errorf("response headers (-want +got):\n%s", diff)
	}

	d, err = check("/deny", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	<-a.seen
	want := Decision{Status: http.StatusUnauthorized, Body: "no", ResponseHeaders: []HeaderOp{{Name: "x-reason", Value: "test"}}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("deny (-want +got):\n%s", diff)
	}

	if _, err := check("/slow", 100*time.Millisecond); err == nil {
		t.Error("a check past its timeout succeeded")
	}
	<-a.seen

	c.Close()
	if _, err := check("/allow?x=1", time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("check after Close: %v, want a closed-client error", err)
	}
}

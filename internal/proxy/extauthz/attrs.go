package extauthz

import (
	"net"
	"net/http"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"trellis.dev/trellis/internal/proxy/authz"
)

// Peer is one end of the connection: its address (host:port) and SPIFFE ID.
type Peer struct {
	Address   string
	Principal string
}

func (p Peer) attr() *authv3.AttributeContext_Peer {
	out := &authv3.AttributeContext_Peer{Principal: p.Principal}
	if host, port, err := net.SplitHostPort(p.Address); err == nil {
		var n uint32
		for _, c := range port {
			n = n*10 + uint32(c-'0')
		}
		out.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: n}}}}
	}
	return out
}

// NetworkRequest is the Check of a TCP connection: its two ends only.
func NetworkRequest(src, dst Peer) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: src.attr(), Destination: dst.attr()}}
}

// HTTPRequest is the Check of an HTTP request as the policy engine sees it
// (normalized path with the query, lower-case header names, repeated headers
// joined with ","), with its two ends, an id and the time it arrived.
func HTTPRequest(r *http.Request, a *authz.Request, src, dst Peer, id string, at time.Time) *authv3.CheckRequest {
	headers := make(map[string]string, len(r.Header)+4)
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers[":authority"] = a.Authority
	headers[":method"] = a.Method
	headers[":path"] = a.PathQuery
	headers[":scheme"] = a.Scheme
	proto := r.Proto
	if r.ProtoMajor == 2 {
		proto = "HTTP/2"
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      src.attr(),
		Destination: dst.attr(),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(at),
			Http: &authv3.AttributeContext_HttpRequest{
				Id:       id,
				Method:   a.Method,
				Headers:  headers,
				Path:     a.PathQuery,
				Host:     a.Authority,
				Scheme:   a.Scheme,
				Protocol: proto,
				Size:     r.ContentLength,
			},
		},
	}}
}

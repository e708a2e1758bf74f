package extauthz

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// Client calls external authorizers (envoy.service.auth.v3.Authorization/Check)
// over h2c. It keeps one gRPC connection per authorizer address, made on first use
// and kept until Close; it is safe for concurrent use.
type Client struct {
	logger *slog.Logger

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewClient returns a Client with no connection yet.
func NewClient(logger *slog.Logger) *Client {
	return &Client{logger: logger, conns: map[string]*grpc.ClientConn{}}
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("ext_authz client closed")
	}
	if cc := c.conns[addr]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connecting to authorizer %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// Check asks the authorizer at addr about req, within ctx (which carries the
// filter's timeout).
func (c *Client) Check(ctx context.Context, addr string, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("checking with authorizer %s: %w", addr, err)
	}
	return resp, nil
}

// Close closes every connection; later Checks fail.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for addr, cc := range c.conns {
		if err := cc.Close(); err != nil {
			c.logger.Debug("closing ext_authz connection", "address", addr, "error", err)
		}
	}
	c.conns = nil
}

// Decision is an authorizer's answer, ready to apply.
type Decision struct {
	// Allowed lets the request through.
	Allowed bool
	// For an allowed request: headers to set or append on the request, headers to
	// remove from it, and headers to add to the response.
	RequestHeaders  []HeaderOp
	RemoveHeaders   []string
	ResponseHeaders []HeaderOp
	// For a refused one: the status (403 unless the authorizer says otherwise), the
	// response headers and body.
	Status int
	Body   string
}

// HeaderOp sets (Append false) or appends a header value.
type HeaderOp struct {
	Name, Value string
	Append      bool
	// IfAbsent adds the header only when the request lacks it; IfPresent only
	// overwrites an existing one.
	IfAbsent, IfPresent bool
}

// Decide reads a CheckResponse: OK allows, any other status refuses.
func Decide(resp *authv3.CheckResponse) Decision {
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		d := Decision{Allowed: true}
		ok := resp.GetOkResponse()
		d.RequestHeaders = headerOps(ok.GetHeaders(), false)
		d.RemoveHeaders = ok.GetHeadersToRemove()
		d.ResponseHeaders = headerOps(ok.GetResponseHeadersToAdd(), true)
		return d
	}
	denied := resp.GetDeniedResponse()
	d := Decision{Status: http.StatusForbidden, Body: denied.GetBody()}
	if code := int(denied.GetStatus().GetCode()); code >= 200 && code <= 599 {
		d.Status = code
	}
	d.ResponseHeaders = headerOps(denied.GetHeaders(), false)
	return d
}

// headerOps reads HeaderValueOptions; appendDefault is what an absent append
// means.
func headerOps(opts []*corev3.HeaderValueOption, appendDefault bool) []HeaderOp {
	out := make([]HeaderOp, 0, len(opts))
	for _, o := range opts {
		h := o.GetHeader()
		op := HeaderOp{Name: h.GetKey(), Value: h.GetValue(), Append: appendDefault}
		if op.Value == "" && len(h.GetRawValue()) > 0 {
			op.Value = string(h.GetRawValue())
		}
		if a := o.GetAppend(); a != nil {
			op.Append = a.GetValue()
		} else {
			switch o.GetAppendAction() {
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				op.Append = false
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				op.IfAbsent = true
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				op.IfPresent = true
			}
		}
		if op.Name != "" {
			out = append(out, op)
		}
	}
	return out
}

// Apply applies ops to h.
func Apply(h http.Header, ops []HeaderOp) {
	for _, op := range ops {
		_, present := h[http.CanonicalHeaderKey(op.Name)]
		switch {
		case op.IfAbsent && present, op.IfPresent && !present:
		case op.Append:
			h.Add(op.Name, op.Value)
		default:
			h.Set(op.Name, op.Value)
		}
	}
}

package control

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/identity"
)

// Reasons of trellis_xds_refused_streams_total.
const (
	refusedUnauthenticated = "unauthenticated"
	refusedIdentity        = "identity_mismatch"
)

// xdsAuth authenticates xDS streams: by a client certificate the mesh CA issued (a
// SPIFFE identity, on the TLS listener), else by the credentials a certificate request
// carries (join token or service-account token, in the stream's metadata). The node
// every request names must then be of that identity: same namespace and service
// account. Refused streams are logged and counted.
type xdsAuth struct {
	ca      *ca.CA
	auth    casvc.Authenticator
	log     *slog.Logger
	refused *prometheus.CounterVec
	now     func() time.Time
}

func newXDSAuth(authority *ca.CA, auth casvc.Authenticator, metrics prometheus.Registerer, log *slog.Logger) (*xdsAuth, error) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_xds_refused_streams_total",
		Help: "xDS streams refused by authentication: reason unauthenticated (no valid certificate or token) or identity_mismatch (the node claims another namespace or service account).",
	}, []string{"reason"})
	for _, r := range []string{refusedUnauthenticated, refusedIdentity} {
		refused.WithLabelValues(r)
	}
	if err := metrics.Register(refused); err != nil {
		return nil, fmt.Errorf("registering xDS authentication metrics: %w", err)
	}
	return &xdsAuth{ca: authority, auth: auth, log: log, refused: refused, now: time.Now}, nil
}

// identify is the identity the stream's caller proves, and how.
func (a *xdsAuth) identify(ctx context.Context) (identity.ID, string, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			id, err := a.verifyCertificate(info.State.PeerCertificates)
			if err != nil {
				return identity.ID{}, "", fmt.Errorf("client certificate: %w", err)
			}
			return id, "certificate", nil
		}
	}
	id, err := a.auth.Authenticate(ctx)
	if err != nil {
		return identity.ID{}, "", err
	}
	return id, "token", nil
}

// verifyCertificate checks a client chain against the current trust bundle (which
// rotates, hence not in the handshake's static configuration) and reads its SPIFFE ID.
func (a *xdsAuth) verifyCertificate(chain []*x509.Certificate) (identity.ID, error) {
	opts := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   a.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, r := range a.ca.TrustBundle() {
		opts.Roots.AddCert(r)
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return identity.ID{}, fmt.Errorf("not issued by the mesh CA: %w", err)
	}
	id, err := identity.FromCertificate(chain[0])
	if err != nil {
		return identity.ID{}, err
	}
	if td := a.ca.TrustDomain(); td != "" && id.TrustDomain != td {
		return identity.ID{}, fmt.Errorf("identity %s is not of trust domain %q", id, td)
	}
	return id, nil
}

// streamInterceptor refuses unauthenticated streams (Unauthenticated) and requests
// whose node is not of the proven identity (PermissionDenied), checking every request
// that names a node before the xDS server sees it.
func (a *xdsAuth) streamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		id, how, err := a.identify(ctx)
		if err != nil {
			return a.refuse(ctx, info, refusedUnauthenticated, codes.Unauthenticated, "authenticating the stream: "+err.Error())
		}
		cs := &checkedStream{ServerStream: ss, auth: a, info: info, id: id, how: how}
		err = handler(srv, cs)
		if refused := cs.refused.Load(); refused != nil {
			// The xDS server ends the stream when RecvMsg fails, but not with
			// RecvMsg's error: the client is told why here.
			return *refused
		}
		return err
	}
}

func (a *xdsAuth) refuse(ctx context.Context, info *grpc.StreamServerInfo, reason string, code codes.Code, msg string) error {
	a.refused.WithLabelValues(reason).Inc()
	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	a.log.Warn("refused xDS stream", "method", info.FullMethod, "peer", peerAddr, "reason", reason, "error", msg)
	return status.Error(code, msg)
}

// checkedStream checks the node of every request against the stream's identity.
type checkedStream struct {
	grpc.ServerStream
	auth *xdsAuth
	info *grpc.StreamServerInfo
	id   identity.ID
	how  string
	// refused is set once a request was refused: the stream ends with that error.
	// RecvMsg runs on the xDS server's receiving goroutine.
	refused atomic.Pointer[error]
}

func (s *checkedStream) RecvMsg(m any) error {
	if refused := s.refused.Load(); refused != nil {
		return *refused
	}
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	n, ok := m.(interface{ GetNode() *corev3.Node })
	if !ok || n.GetNode() == nil {
		return nil
	}
	if err := matchNode(n.GetNode(), s.id); err != nil {
		refused := s.auth.refuse(s.Context(), s.info, refusedIdentity, codes.PermissionDenied,
			fmt.Sprintf("node %q: %v (identity proven by %s: %s)", n.GetNode().GetId(), err, s.how, s.id))
		s.refused.Store(&refused)
		return refused
	}
	return nil
}

// matchNode checks that node's metadata claims id's namespace and service account.
func matchNode(node *corev3.Node, id identity.ID) error {
	md, err := bootstrap.MetadataFromProto(node)
	if err != nil {
		return err
	}
	// Sidecars and proxyless agents take an empty namespace or service account as
	// "default" when they ask for their certificate; so does this check.
	ns, sa := md.Namespace, md.ServiceAccount
	if ns == "" {
		ns = "default"
	}
	if sa == "" {
		sa = "default"
	}
	var errs []error
	if ns != id.Namespace {
		errs = append(errs, fmt.Errorf("namespace %q is not the caller's %q", ns, id.Namespace))
	}
	if sa != id.ServiceAccount {
		errs = append(errs, fmt.Errorf("service account %q is not the caller's %q", sa, id.ServiceAccount))
	}
	return errors.Join(errs...)
}

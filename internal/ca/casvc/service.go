package casvc

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/identity"
)

// maxCSRSize bounds the PEM request a caller may send.
const maxCSRSize = 64 << 10

// Signer issues certificates; *ca.CA is one.
type Signer interface {
	// Sign issues a certificate for id to the key of a DER CSR and returns the PEM chain,
	// leaf first, root excluded.
	Sign(csrDER []byte, id identity.ID, ttl time.Duration) ([]byte, error)
	// TrustBundle lists the roots, the signing one last.
	TrustBundle() []*x509.Certificate
}

var _ Signer = (*ca.CA)(nil)

// Authenticator tells which identity the caller of a request holds.
type Authenticator interface {
	Authenticate(ctx context.Context) (identity.ID, error)
}

// Config configures a Service.
type Config struct {
	// Signer signs the requests; required.
	Signer Signer
	// Authenticator authenticates the callers; required.
	Authenticator Authenticator
	// Logger receives one line per refused request; default slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives trellis_ca_signings_total{result}.
	Registerer prometheus.Registerer
	// RatePerSecond and Burst bound the requests of one peer IP (a token bucket,
	// checked before authentication); beyond, ResourceExhausted. Zero: DefaultCSRRate
	// and DefaultCSRBurst.
	RatePerSecond float64
	Burst         int
}

// Service implements IstioCertificateService.
type Service struct {
	pb.UnimplementedIstioCertificateServiceServer

	signer   Signer
	auth     Authenticator
	log      *slog.Logger
	signings *prometheus.CounterVec
	limiter  *peerLimiter
}

var _ pb.IstioCertificateServiceServer = (*Service)(nil)

// Results counted by trellis_ca_signings_total.
const (
	ResultSuccess         = "success"
	ResultUnauthenticated = "unauthenticated"
	ResultDenied          = "denied"
	ResultInvalid         = "invalid"
	ResultError           = "error"
	ResultRateLimited     = "rate_limited"
)

// New makes a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Signer == nil || cfg.Authenticator == nil {
		return nil, errors.New("creating CA service: Signer and Authenticator are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	signings := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_ca_signings_total",
		Help: "Certificate requests handled by the CA, by result.",
	}, []string{"result"})
	for _, r := range []string{ResultSuccess, ResultUnauthenticated, ResultDenied, ResultInvalid, ResultError, ResultRateLimited} {
		signings.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(signings); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, fmt.Errorf("creating CA service: registering metrics: %w", err)
			}
			signings = already.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return &Service{signer: cfg.Signer, auth: cfg.Authenticator, log: cfg.Logger, signings: signings,
		limiter: newPeerLimiter(cfg.RatePerSecond, cfg.Burst)}, nil
}

// Register adds the service to a gRPC server.
func (s *Service) Register(srv grpc.ServiceRegistrar) {
	pb.RegisterIstioCertificateServiceServer(srv, s)
}

// CreateCertificate authenticates the caller and signs its CSR for the identity it holds.
func (s *Service) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	if !s.limiter.allow(peerAddr(ctx)) {
		s.signings.WithLabelValues(ResultRateLimited).Inc()
		return nil, status.Error(codes.ResourceExhausted, "too many certificate requests from this address; retry later")
	}
	id, err := s.auth.Authenticate(ctx)
	if err != nil {
		return nil, s.refuse(ctx, ResultUnauthenticated, codes.Unauthenticated, identity.ID{}, err)
	}
	csr, ttl, err := decodeRequest(req)
	if err != nil {
		return nil, s.refuse(ctx, ResultInvalid, codes.InvalidArgument, id, err)
	}
	chainPEM, err := s.signer.Sign(csr, id, ttl)
	switch {
	case errors.Is(err, ca.ErrIdentityMismatch):
		return nil, s.refuse(ctx, ResultDenied, codes.PermissionDenied, id, err)
	case errors.Is(err, ca.ErrInvalidRequest):
		return nil, s.refuse(ctx, ResultInvalid, codes.InvalidArgument, id, err)
	case err != nil:
		return nil, s.refuse(ctx, ResultError, codes.Internal, id, err)
	}
	resp := &pb.IstioCertificateResponse{}
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		resp.CertChain = append(resp.CertChain, string(pem.EncodeToMemory(block)))
	}
	for _, root := range s.signer.TrustBundle() {
		resp.CertChain = append(resp.CertChain, string(ca.EncodeCertificates(root)))
	}
	s.signings.WithLabelValues(ResultSuccess).Inc()
	s.log.Debug("signed certificate", "identity", id.String(), "peer", peerAddr(ctx))
	return resp, nil
}

// StreamInterceptor refuses a stream (xDS) whose caller the Authenticator does not
// accept, with Unauthenticated: a control plane that requires it serves its
// configuration only to members of the mesh. It authenticates as CreateCertificate
// does, without its rate limit (streams are long-lived and reconnect with backoff).
func (s *Service) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if _, err := s.auth.Authenticate(ss.Context()); err != nil {
			s.log.Debug("refused unauthenticated stream", "method", info.FullMethod, "peer", peerAddr(ss.Context()), "error", err)
			return status.Error(codes.Unauthenticated, "authenticating the stream: "+err.Error())
		}
		return handler(srv, ss)
	}
}

// refuse counts and logs a refused request and makes its gRPC status.
func (s *Service) refuse(ctx context.Context, result string, code codes.Code, id identity.ID, err error) error {
	s.signings.WithLabelValues(result).Inc()
	attrs := []any{"peer", peerAddr(ctx), "result", result, "error", err}
	if !id.IsZero() {
		attrs = append(attrs, "identity", id.String())
	}
	s.log.Warn("refused certificate request", attrs...)
	if code == codes.Internal {
		return status.Error(code, "signing certificate failed")
	}
	return status.Error(code, err.Error())
}

// decodeRequest reads the PEM CSR and the requested lifetime.
func decodeRequest(req *pb.IstioCertificateRequest) ([]byte, time.Duration, error) {
	if len(req.GetCsr()) > maxCSRSize {
		return nil, 0, fmt.Errorf("CSR larger than %d bytes", maxCSRSize)
	}
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, 0, errors.New("csr is not a PEM CERTIFICATE REQUEST")
	}
	secs := req.GetValidityDuration()
	if secs < 0 {
		return nil, 0, fmt.Errorf("negative validity_duration %d", secs)
	}
	ttl := time.Duration(math.MaxInt64)
	if secs < int64(math.MaxInt64/time.Second) {
		ttl = time.Duration(secs) * time.Second
	}
	return block.Bytes, ttl, nil
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

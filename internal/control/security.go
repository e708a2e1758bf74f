package control

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/xdsserver"
)

// security is the control plane's CA: the certificate authority, the CA service that
// sidecars send their CSRs to, and the serving certificate of the TLS xDS listener.
type security struct {
	ca      *ca.CA
	svc     *casvc.Service
	serving *servingCert
	log     *slog.Logger
	dataDir string
	// xdsAuth, if set, makes xDS streams authenticate (xdsauth.go).
	xdsAuth *xdsAuth
	// onBundleChange is called after a rotation changed the trust bundle.
	onBundleChange func()
}

// JoinTokenFile is where the control plane whose data directory is dataDir keeps the
// join token that authenticates sidecars' certificate requests (local mode).
func JoinTokenFile(dataDir string) string { return filepath.Join(dataDir, casvc.JoinTokenFile) }

// TrustBundleFile is where the control plane whose data directory is dataDir keeps the
// trust bundle (PEM), which verifies its serving certificate and every workload's.
func TrustBundleFile(dataDir string) string { return ca.TrustBundleFile(dataDir) }

// securityParts are what Kubernetes mode supplies instead of the data directory's
// CA and join token: the CA loaded from its Secret, and the TokenReview authenticator.
type securityParts struct {
	ca   *ca.CA
	auth casvc.Authenticator
}

// caConfig is the CA's configuration from the control plane's.
func caConfig(cfg Config, log *slog.Logger) ca.Config {
	return ca.Config{
		DataDir:     cfg.DataDir,
		TrustDomain: cfg.TrustDomain,
		CertTTL:     cfg.CertTTL,
		External:    cfg.ExternalCA,
		Logger:      log,
	}
}

// newSecurity loads or creates the CA in cfg.DataDir and the join token (or takes
// them from parts, in Kubernetes mode), and the CA service, registering the CA's
// metrics.
func newSecurity(cfg Config, metrics prometheus.Registerer, log *slog.Logger, parts *securityParts) (*security, error) {
	if parts == nil {
		authority, err := ca.New(caConfig(cfg, log))
		if err != nil {
			return nil, err
		}
		token, err := casvc.JoinToken(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		parts = &securityParts{ca: authority, auth: casvc.NewTokenAuthenticator(token, authority.TrustDomain())}
	}
	authority := parts.ca
	svc, err := casvc.New(casvc.Config{
		Signer:        authority,
		Authenticator: parts.auth,
		Logger:        log,
		Registerer:    metrics,
		RatePerSecond: cfg.CSRRate,
		Burst:         cfg.CSRBurst,
	})
	if err != nil {
		return nil, err
	}
	roots := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trellis_ca_trust_bundle_roots",
		Help: "Roots in the trust bundle: 2 during a root rotation, else 1.",
	}, func() float64 { return float64(len(authority.TrustBundle())) })
	if err := metrics.Register(roots); err != nil {
		return nil, fmt.Errorf("registering CA metrics: %w", err)
	}
	names := append([]string{"localhost", "127.0.0.1"}, cfg.ServingNames...)
	s := &security{
		ca:      authority,
		svc:     svc,
		serving: &servingCert{ca: authority, names: slices.Compact(names), now: time.Now},
		log:     log,
		dataDir: cfg.DataDir,
	}
	if cfg.XDSRequireAuth {
		if s.xdsAuth, err = newXDSAuth(authority, parts.auth, metrics, log); err != nil {
			return nil, err
		}
	}
	if err := s.writeBundle(); err != nil {
		return nil, err
	}
	if _, err := s.serving.get(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// writeBundle keeps TrustBundleFile current. A self-signed CA writes it itself; a
// user-supplied CA's bundle is copied there, so that sidecars find it in one place.
func (s *security) writeBundle() error {
	path := TrustBundleFile(s.dataDir)
	want := s.ca.TrustBundlePEM()
	if have, err := os.ReadFile(path); err == nil && string(have) == string(want) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing trust bundle: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, want, 0o600); err != nil {
		return fmt.Errorf("writing trust bundle: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing trust bundle: %w", err)
	}
	return nil
}

// serveOptions are the options of one xDS listener: the CA service beside xDS, and for
// the secure listener TLS with the serving certificate.
func (s *security) serveOptions(secure bool) []xdsserver.ServeOption {
	opts := []xdsserver.ServeOption{xdsserver.WithService(func(r grpc.ServiceRegistrar) { s.svc.Register(r) })}
	if s.xdsAuth != nil {
		opts = append(opts, xdsserver.WithGRPCOptions(grpc.ChainStreamInterceptor(s.xdsAuth.streamInterceptor())))
	}
	if secure {
		creds := credentials.NewTLS(&tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.serving.get,
			// A workload certificate authenticates an xDS stream; it is verified
			// against the current trust bundle, which rotates, by xdsAuth.
			ClientAuth: tls.RequestClientCert,
		})
		opts = append(opts, xdsserver.WithGRPCOptions(grpc.Creds(creds)))
	}
	return opts
}

// rotate starts a root rotation: new certificates are signed by a new root, and both
// roots are trusted until retire.
func (s *security) rotate() error {
	if err := s.ca.Rotate(); err != nil {
		return err
	}
	s.bundleChanged()
	return nil
}

// retire ends a root rotation.
func (s *security) retire() error {
	if err := s.ca.RetireOldRoots(); err != nil {
		return err
	}
	s.bundleChanged()
	return nil
}

func (s *security) bundleChanged() {
	if err := s.writeBundle(); err != nil {
		s.log.Error("writing trust bundle", "err", err)
	}
	s.serving.reset()
	if s.onBundleChange != nil {
		s.onBundleChange()
	}
}

// register adds the CA's operations to the monitoring server, on the monitoring listener, to loopback callers
// only: GET /ca/roots (the trust bundle, PEM), POST /ca/rotate, POST
// /ca/retire-old-roots.
func (s *security) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ca/roots", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(s.ca.TrustBundlePEM())
	})
	op := func(name string, f func() error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !fromLoopback(r) {
				http.Error(w, name+" is only allowed from the loopback interface", http.StatusForbidden)
				return
			}
			if err := f(); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			fmt.Fprintf(w, "%s: done; the trust bundle has %d root(s)\n", name, len(s.ca.TrustBundle()))
		}
	}
	mux.HandleFunc("POST /ca/rotate", op("rotate", s.rotate))
	mux.HandleFunc("POST /ca/retire-old-roots", op("retire-old-roots", s.retire))
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// servingCert is the certificate of the TLS xDS listener, issued by the CA and
// renewed at half its lifetime or when the trust bundle changes.
type servingCert struct {
	ca    *ca.CA
	names []string
	now   func() time.Time

	mu      sync.Mutex
	current *tls.Certificate
}

// get returns the current certificate, issuing a new one when needed; it is the
// listener's tls.Config.GetCertificate.
func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.current; c != nil {
		half := c.Leaf.NotBefore.Add(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore) / 2)
		if s.now().Before(half) {
			return c, nil
		}
	}
	c, err := s.ca.IssueServing(s.names, 0)
	if err != nil {
		if s.current != nil && s.now().Before(s.current.Leaf.NotAfter) {
			return s.current, nil // keep serving; try again at the next handshake
		}
		return nil, err
	}
	s.current = &c
	return s.current, nil
}

// reset makes the next handshake use a new certificate (signed by the new root).
func (s *servingCert) reset() {
	s.mu.Lock()
	s.current = nil
	s.mu.Unlock()
}

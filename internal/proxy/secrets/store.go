package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/peertls"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// Workload provides the sidecar's own certificate; *certclient.Rotator is one.
type Workload interface {
	// TLSCertificate is the certificate in use, an error before the first.
	TLSCertificate() (*tls.Certificate, error)
	// Current is the certificate in use with its metadata, nil before the first.
	Current() *certclient.Certificate
}

var _ Workload = (*certclient.Rotator)(nil)

// Config configures a Store.
type Config struct {
	// Identity is the sidecar's SPIFFE ID (XFCC "By").
	Identity identity.ID
	// Workload provides secret "default"; nil when the sidecar has no certificate.
	Workload Workload
	// RenewFraction and RenewEvery are the rotator's settings, to show when the
	// certificate will be renewed; defaults certclient's.
	RenewFraction float64
	RenewEvery    time.Duration
	// RootSettle is how long a new root must have been in the trust bundle before
	// a certificate it issued is presented; default DefaultRootSettle.
	RootSettle time.Duration
	Logger     *slog.Logger
}

// Store is the sidecar's TLS material: its certificate and its trust bundle.
type Store struct {
	cfg    Config
	bundle peertls.Bundle
	meta   atomic.Pointer[bundleMeta]
	files  *fileCache

	// The certificate presented (present.go): chosen, read at every handshake;
	// switchAt (unix ns, 0: none) is when to choose again. mu guards the rest.
	chosen   atomic.Pointer[certclient.Certificate]
	switchAt atomic.Int64
	mu       sync.Mutex
	latest   *certclient.Certificate
	// rootSince is when each root of the bundle (by fingerprint) joined it.
	rootSince map[string]time.Time
	rootByFP  map[string]*x509.Certificate
}

// bundleMeta is what /certs shows of the trust bundle besides the roots.
type bundleMeta struct {
	name, version string
	roots         []*x509.Certificate
}

// New returns a Store with an empty trust bundle.
func New(cfg Config) *Store {
	if cfg.RenewFraction <= 0 || cfg.RenewFraction >= 1 {
		cfg.RenewFraction = certclient.DefaultRenewFraction
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RootSettle <= 0 {
		cfg.RootSettle = DefaultRootSettle
	}
	return &Store{cfg: cfg, files: newFileCache()}
}

// HasWorkload reports whether the sidecar has (or is obtaining) its own certificate.
func (s *Store) HasWorkload() bool { return s.cfg.Workload != nil }

// Identity is the sidecar's SPIFFE ID.
func (s *Store) Identity() identity.ID { return s.cfg.Identity }

// SetTrustBundle replaces the trust bundle: every later handshake, inbound and
// outbound, verifies against roots. version is the xDS version it came with.
func (s *Store) SetTrustBundle(name, version string, roots []*x509.Certificate) {
	s.bundle.Set(roots)
	s.meta.Store(&bundleMeta{name: name, version: version, roots: roots})
	s.mu.Lock()
	now := time.Now()
	s.trackRootsLocked(roots, now)
	s.chooseLocked(now)
	s.mu.Unlock()
	s.cfg.Logger.Info("trust bundle updated", "secret", name, "version", version, "roots", len(roots))
}

// Roots is the current trust bundle, nil before the first.
func (s *Store) Roots() []*x509.Certificate { return s.bundle.Roots() }

// Attach gives every TLS filter chain and TLS cluster of t its tls.Config. It runs
// before t is published. A cluster whose files cannot be read keeps a nil Config
// (its connections fail) and is reported in the returned error; t is usable anyway.
func (s *Store) Attach(t *runtime.Table) error {
	var errs []error
	for _, l := range t.Listeners {
		for _, fc := range l.Chains {
			if fc.TLS == nil {
				continue
			}
			cfg, err := s.ServerConfig(fc.TLS)
			if err != nil {
				errs = append(errs, fmt.Errorf("listener %q chain %q: %w", l.Name, fc.Name, err))
				continue
			}
			fc.TLS.Config, fc.TLS.LocalIdentity = cfg, s.cfg.Identity.String()
		}
	}
	for _, c := range t.Clusters {
		if c.TLS == nil {
			continue
		}
		cfg, err := s.ClientConfig(c.TLS)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: %w", c.Name, err))
			continue
		}
		c.TLS.Config = cfg
	}
	return errors.Join(errs...)
}

// ServerConfig is the tls.Config of a filter chain terminating mutual TLS.
func (s *Store) ServerConfig(d *runtime.DownstreamTLS) (*tls.Config, error) {
	if d.CertSecret != names.WorkloadSecret || s.cfg.Workload == nil {
		return nil, fmt.Errorf("secret %q is not available", d.CertSecret)
	}
	cfg, err := peertls.ServerConfig(peertls.Config{
		Certificate: s.TLSCertificate,
		Roots:       s.bundle.Pool,
		NextProtos:  d.ALPN,
		Match:       matchIDs(d.SANs),
	})
	if err != nil {
		return nil, err
	}
	cfg.MinVersion, cfg.MaxVersion = d.Versions.Min, d.Versions.Max
	return cfg, nil
}

// ClientConfig is the tls.Config of a cluster's connections.
func (s *Store) ClientConfig(u *runtime.UpstreamTLS) (*tls.Config, error) {
	if !u.Mesh() {
		return s.fileClientConfig(u)
	}
	if s.cfg.Workload == nil {
		return nil, fmt.Errorf("secret %q is not available", u.CertSecret)
	}
	match := matchIDs(u.SANs)
	if match == nil {
		match = func(identity.ID) bool { return true }
	}
	cfg, err := peertls.ClientConfig(peertls.Config{
		Certificate: s.TLSCertificate,
		Roots:       s.bundle.Pool,
		NextProtos:  u.ALPN,
		ServerName:  u.SNI,
		Match:       match,
	})
	if err != nil {
		return nil, err
	}
	cfg.MinVersion, cfg.MaxVersion = u.Versions.Min, u.Versions.Max
	return cfg, nil
}

// matchIDs accepts an identity that one of the URI matchers accepts; nil for none.
func matchIDs(sans []runtime.SANMatcher) func(identity.ID) bool {
	if len(sans) == 0 {
		return nil
	}
	return func(id identity.ID) bool {
		v := id.String()
		for _, m := range sans {
			if m.Type == runtime.SANURI && m.Matches(v) {
				return true
			}
		}
		return false
	}
}

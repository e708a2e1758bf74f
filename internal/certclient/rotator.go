package certclient

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Fetcher obtains a new certificate; *Client is one.
type Fetcher interface {
	Fetch(ctx context.Context) (*Certificate, error)
}

var _ Fetcher = (*Client)(nil)

// Defaults of RotatorConfig.
const (
	DefaultRenewFraction = 0.5
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultFetchTimeout  = 10 * time.Second
)

// RotatorConfig configures a Rotator.
type RotatorConfig struct {
	// Fetcher obtains certificates; required.
	Fetcher Fetcher
	// RenewFraction is how much of a certificate's lifetime passes before it is renewed;
	// default one half.
	RenewFraction float64
	// RenewEvery, if set, renews at least this often whatever the lifetime (a test
	// setting, to rotate every few seconds).
	RenewEvery time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts; defaults 500ms
	// and 30s.
	MinBackoff, MaxBackoff time.Duration
	// FetchTimeout bounds one attempt; default 10s.
	FetchTimeout time.Duration
	// OnUpdate, if set, is called from Run's goroutine with every new certificate, after
	// it is in use.
	OnUpdate func(*Certificate)
	// Logger receives renewals (Debug) and failures (Warn); default slog.Default().
	Logger *slog.Logger
}

// Rotator keeps a certificate fresh.
type Rotator struct {
	cfg     RotatorConfig
	log     *slog.Logger
	current atomic.Pointer[Certificate]
	ready   chan struct{}
}

// NewRotator makes a Rotator; Run starts it.
func NewRotator(cfg RotatorConfig) (*Rotator, error) {
	if cfg.Fetcher == nil {
		return nil, errors.New("creating certificate rotator: no Fetcher")
	}
	if cfg.RenewFraction <= 0 || cfg.RenewFraction >= 1 {
		cfg.RenewFraction = DefaultRenewFraction
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Rotator{cfg: cfg, log: cfg.Logger, ready: make(chan struct{})}, nil
}

// Run obtains the first certificate and renews it until ctx is done; then it returns
// nil. Failures are retried with backoff, never returned.
func (r *Rotator) Run(ctx context.Context) error {
	backoff := r.cfg.MinBackoff
	timer := time.NewTimer(0) // the first fetch at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		cert, err := r.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait := jitter(backoff)
			attrs := []any{"error", err, "retry_in", wait.Round(time.Millisecond)}
			if cur := r.current.Load(); cur != nil {
				attrs = append(attrs, "current_expires", cur.NotAfter)
			}
			r.log.Warn("renewing workload certificate failed; keeping the current one", attrs...)
			backoff = min(2*backoff, r.cfg.MaxBackoff)
			timer.Reset(wait)
			continue
		}
		backoff = r.cfg.MinBackoff
		r.current.Store(cert)
		if r.cfg.OnUpdate != nil {
			r.cfg.OnUpdate(cert)
		}
		select {
		case <-r.ready:
		default:
			close(r.ready)
		}
		next := r.renewIn(cert)
		r.log.Debug("obtained workload certificate", "identity", cert.Identity.String(),
			"expires", cert.NotAfter, "renew_in", next.Round(time.Millisecond))
		timer.Reset(next)
	}
}

func (r *Rotator) fetch(ctx context.Context) (*Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
	defer cancel()
	return r.cfg.Fetcher.Fetch(ctx)
}

// renewIn is how long until cert is renewed: RenewFraction of the lifetime it had when
// it arrived (its NotBefore is backdated for clock skew, so is not the start).
func (r *Rotator) renewIn(cert *Certificate) time.Duration {
	life := cert.NotAfter.Sub(cert.Received)
	next := time.Duration(float64(life) * r.cfg.RenewFraction)
	if r.cfg.RenewEvery > 0 && r.cfg.RenewEvery < next {
		next = r.cfg.RenewEvery
	}
	return max(next, 0)
}

// jitter spreads d by ±10%, so that proxies started together do not renew together.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// Ready is closed once the first certificate is in use.
func (r *Rotator) Ready() <-chan struct{} { return r.ready }

// Current is the certificate in use, nil before the first.
func (r *Rotator) Current() *Certificate { return r.current.Load() }

// GetCertificate is for tls.Config.GetCertificate (the server side).
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.TLSCertificate()
}

// GetClientCertificate is for tls.Config.GetClientCertificate (the client side).
func (r *Rotator) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.TLSCertificate()
}

// TLSCertificate is the certificate in use, for peertls.Config.Certificate; an error
// before the first.
func (r *Rotator) TLSCertificate() (*tls.Certificate, error) {
	cur := r.current.Load()
	if cur == nil {
		return nil, errors.New("no workload certificate yet")
	}
	return cur.TLS, nil
}

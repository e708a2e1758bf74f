package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"trellis.dev/trellis/internal/certclient"
)

// DefaultRootSettle is how long a root must have been in the trust bundle before the sidecar
// presents a certificate it issued. After a root rotation the CA signs with the new
// root at once, while the new bundle reaches the sidecars a moment later: a sidecar
// that presented its renewed certificate at once would be refused by peers that do
// not trust the new root yet. So it keeps presenting its previous certificate until
// the new root has settled in its own bundle (and so, within milliseconds, in its
// peers').
const DefaultRootSettle = 2 * time.Second

// expiryMargin: a certificate this close to its expiry is replaced whatever the
// root of the new one.
const expiryMargin = time.Minute

// Renewed is the rotator's OnUpdate: a new certificate is available.
func (s *Store) Renewed(c *certclient.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest = c
	s.chooseLocked(time.Now())
}

// TLSCertificate is the certificate to present, for peertls; an error before the
// first.
func (s *Store) TLSCertificate() (*tls.Certificate, error) {
	s.switchIfDue()
	if c := s.chosen.Load(); c != nil {
		return c.TLS, nil
	}
	if s.cfg.Workload != nil {
		return s.cfg.Workload.TLSCertificate()
	}
	return nil, errors.New("no workload certificate")
}

// presented is the certificate presented now, nil before the first.
func (s *Store) presented() *certclient.Certificate {
	s.switchIfDue()
	if c := s.chosen.Load(); c != nil {
		return c
	}
	if s.cfg.Workload != nil {
		return s.cfg.Workload.Current()
	}
	return nil
}

// switchIfDue chooses again once a pending certificate's root has settled.
func (s *Store) switchIfDue() {
	if at := s.switchAt.Load(); at != 0 && time.Now().UnixNano() >= at {
		s.mu.Lock()
		s.chooseLocked(time.Now())
		s.mu.Unlock()
	}
}

// chooseLocked picks the certificate to present: the latest, unless its root is not
// settled in the bundle and the one presented now is still good. s.mu is held.
func (s *Store) chooseLocked(now time.Time) {
	s.switchAt.Store(0)
	latest, cur := s.latest, s.chosen.Load()
	if latest == nil || latest == cur {
		return
	}
	settledAt, known := s.settledAtLocked(latest)
	switch {
	case cur == nil, !now.Add(expiryMargin).Before(cur.NotAfter), known && !now.Before(settledAt):
		s.chosen.Store(latest)
	case known:
		s.switchAt.Store(settledAt.UnixNano())
	}
	// Not known: the root is not in the bundle; SetTrustBundle chooses again.
}

// settledAtLocked is when the root that issued c has been in the bundle for
// Config.RootSettle; known is false when no root of the bundle issued it. Before the first
// bundle every certificate is settled.
func (s *Store) settledAtLocked(c *certclient.Certificate) (time.Time, bool) {
	if len(s.rootSince) == 0 {
		return time.Time{}, true
	}
	chain := c.TLS.Certificate
	top, err := x509.ParseCertificate(chain[len(chain)-1])
	if err != nil {
		return time.Time{}, false
	}
	for fp, since := range s.rootSince {
		if r := s.rootByFP[fp]; r != nil && top.CheckSignatureFrom(r) == nil {
			return since.Add(s.cfg.RootSettle), true
		}
	}
	return time.Time{}, false
}

// trackRootsLocked records when each root joined the bundle: the first bundle's
// roots count as settled already, later ones from now.
func (s *Store) trackRootsLocked(roots []*x509.Certificate, now time.Time) {
	first := len(s.rootSince) == 0
	since := map[string]time.Time{}
	byFP := map[string]*x509.Certificate{}
	for _, r := range roots {
		fp := fingerprint(r.Raw)
		byFP[fp] = r
		switch t, ok := s.rootSince[fp]; {
		case ok:
			since[fp] = t
		case first:
			since[fp] = now.Add(-s.cfg.RootSettle)
		default:
			since[fp] = now
		}
	}
	s.rootSince, s.rootByFP = since, byFP
}

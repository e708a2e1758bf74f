package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// cipherSuites are the TLS 1.2 suites allowed toward servers outside the mesh, as
// peertls allows between sidecars: ECDHE with AEAD.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CheckFiles reads the files a cluster's TLS settings name, so that a cluster whose
// files cannot be read is rejected when it arrives.
func (s *Store) CheckFiles(u *runtime.UpstreamTLS) error {
	if u == nil || u.Mesh() {
		return nil
	}
	if u.CertFile != "" {
		if _, err := s.files.keyPair(u.CertFile, u.KeyFile); err != nil {
			return err
		}
	}
	if u.CAFile != "" {
		if _, err := s.files.pool(u.CAFile); err != nil {
			return err
		}
	}
	return nil
}

// fileClientConfig is the tls.Config of SIMPLE and MUTUAL TLS: the client certificate
// from files, the server verified against the CA file (or the system's roots) and
// the SAN matchers, else the SNI.
func (s *Store) fileClientConfig(u *runtime.UpstreamTLS) (*tls.Config, error) {
	if err := s.CheckFiles(u); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:         u.Versions.Min,
		MaxVersion:         u.Versions.Max,
		CipherSuites:       cipherSuites,
		ServerName:         u.SNI,
		NextProtos:         u.ALPN,
		InsecureSkipVerify: true, // verified below, against roots read at each handshake
	}
	if u.CertFile != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.files.keyPair(u.CertFile, u.KeyFile)
		}
	}
	if u.Verify {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return s.verifyServer(cs, u) }
	}
	return cfg, nil
}

func (s *Store) verifyServer(cs tls.ConnectionState, u *runtime.UpstreamTLS) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	var roots *x509.CertPool
	if u.CAFile != "" {
		var err error
		if roots, err = s.files.pool(u.CAFile); err != nil {
			return err
		}
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("verifying server certificate: %w", err)
	}
	if len(u.SANs) == 0 {
		if u.SNI == "" {
			return errors.New("verifying server certificate: no SNI nor subject alt names to verify its name against")
		}
		return leaf.VerifyHostname(u.SNI)
	}
	for _, m := range u.SANs {
		switch m.Type {
		case runtime.SANDNS:
			if m.Prefix && slices.ContainsFunc(leaf.DNSNames, m.Matches) || !m.Prefix && leaf.VerifyHostname(m.Value) == nil {
				return nil
			}
		case runtime.SANURI:
			for _, uri := range leaf.URIs {
				if m.Matches(uri.String()) {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("server certificate %q matches none of the subject alt names expected", leaf.Subject)
}

// fileCache keeps certificates and roots read from files, and reads a file again
// when its size or modification time changes.
type fileCache struct {
	mu    sync.Mutex
	pairs map[[2]string]*cachedPair
	pools map[string]*cachedPool
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

type cachedPair struct {
	stamps [2]fileStamp
	cert   *tls.Certificate
}

type cachedPool struct {
	stamp fileStamp
	pool  *x509.CertPool
}

func newFileCache() *fileCache {
	return &fileCache{pairs: map[[2]string]*cachedPair{}, pools: map[string]*cachedPool{}}
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}, nil
}

func (f *fileCache) keyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cs, err := stampOf(certFile)
	if err != nil {
		return nil, err
	}
	ks, err := stampOf(keyFile)
	if err != nil {
		return nil, err
	}
	key := [2]string{certFile, keyFile}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.pairs[key]; c != nil && c.stamps == [2]fileStamp{cs, ks} {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate %s: %w", certFile, err)
	}
	f.pairs[key] = &cachedPair{stamps: [2]fileStamp{cs, ks}, cert: &cert}
	return &cert, nil
}

func (f *fileCache) pool(path string) (*x509.CertPool, error) {
	st, err := stampOf(path)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.pools[path]; c != nil && c.stamp == st {
		return c.pool, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("reading %s: no PEM certificate", path)
	}
	f.pools[path] = &cachedPool{stamp: st, pool: pool}
	return pool, nil
}

// loadedPairs returns the client certificates loaded, by certificate file.
func (f *fileCache) loadedPairs() map[string]*tls.Certificate {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]*tls.Certificate{}
	for key, c := range f.pairs {
		out[key[0]] = c.cert
	}
	return out
}

package proxyless

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
)

// AgentConfig configures an Agent.
type AgentConfig struct {
	// App is the application; its CertDir is where the files go (required), its
	// node metadata names the identity (namespace, service account).
	App Config
	// TrustDomain of the identity; default identity.DefaultTrustDomain.
	TrustDomain string
	// TokenFile holds the join token that authenticates certificate requests.
	TokenFile string
	// CertTTL is the lifetime asked for; zero: the CA's default.
	CertTTL time.Duration
	// RenewEvery, a test setting, renews at least this often.
	RenewEvery time.Duration
	// Logger receives renewals and failures; default slog.Default().
	Logger *slog.Logger
}

// Agent keeps a proxyless application's certificate files fresh.
type Agent struct {
	cfg     AgentConfig
	conn    *grpc.ClientConn
	rotator *certclient.Rotator
	written chan error // the outcome of writing the first certificate
}

// NewAgent connects (lazily) to the control plane's CA; Run obtains certificates.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.App.CertDir == "" {
		return nil, errors.New("certificate agent: no certificate directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	token, err := certclient.ReadToken(cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("certificate agent: %w", err)
	}
	creds := insecure.NewCredentials()
	if cfg.App.XDSCAFile != "" {
		if creds, err = credentials.NewClientTLSFromFile(cfg.App.XDSCAFile, ""); err != nil {
			return nil, fmt.Errorf("certificate agent: reading the control plane's CA file: %w", err)
		}
	}
	conn, err := grpc.NewClient("passthrough:///"+cfg.App.XDS, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("certificate agent: connecting to %s: %w", cfg.App.XDS, err)
	}
	md := cfg.App.Node.Metadata
	id := identity.New(namespaceOr(md.Namespace), md.ServiceAccount)
	if cfg.TrustDomain != "" {
		id.TrustDomain = cfg.TrustDomain
	}
	client, err := certclient.New(certclient.Config{Conn: conn, Identity: id, Token: token, TTL: cfg.CertTTL})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("certificate agent: %w", err)
	}
	a := &Agent{cfg: cfg, conn: conn, written: make(chan error, 1)}
	a.rotator, err = certclient.NewRotator(certclient.RotatorConfig{
		Fetcher:    client,
		RenewEvery: cfg.RenewEvery,
		Logger:     cfg.Logger,
		OnUpdate:   a.write,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("certificate agent: %w", err)
	}
	return a, nil
}

func namespaceOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// Run obtains the certificate and renews it until ctx ends; then it closes the
// connection to the CA.
func (a *Agent) Run(ctx context.Context) error {
	defer a.conn.Close()
	return a.rotator.Run(ctx)
}

// Written returns the outcome of writing the first certificate's files, once they
// are written (or could not be); it returns ctx's error if ctx ends first.
func (a *Agent) Written(ctx context.Context) error {
	select {
	case err := <-a.written:
		a.written <- err // for later callers
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// write stores a new certificate: the trust bundle first, then the key, then the
// chain, each atomically, so that a reader never sees half a file.
func (a *Agent) write(c *certclient.Certificate) {
	err := a.writeFiles(c)
	if err != nil {
		a.cfg.Logger.Error("writing the workload certificate files", "dir", a.cfg.App.CertDir, "err", err)
	} else {
		a.cfg.Logger.Info("workload certificate written", "identity", c.Identity.String(), "dir", a.cfg.App.CertDir,
			"expires", c.NotAfter)
	}
	select {
	case a.written <- err:
	default: // the first outcome is kept
	}
}

func (a *Agent) writeFiles(c *certclient.Certificate) error {
	dir := a.cfg.App.CertDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var roots, chain bytes.Buffer
	for _, r := range c.Roots {
		pem.Encode(&roots, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	for _, der := range c.TLS.Certificate {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		return fmt.Errorf("encoding the private key: %w", err)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, f := range []struct {
		name string
		data []byte
	}{{CAFile, roots.Bytes()}, {KeyFile, key}, {CertFile, chain.Bytes()}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

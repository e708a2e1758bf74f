package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/secrets"
	"trellis.dev/trellis/internal/proxy/xdsclient"
)

// security is the sidecar's side of mutual TLS: the connection to the control plane
// (TLS when the bootstrap names a CA file), shared by ADS and the CA client; the
// certificate rotator (when the bootstrap names a join token file); and the secrets
// store that the listeners and clusters take their tls.Configs from.
type security struct {
	conn    *grpc.ClientConn
	rotator *certclient.Rotator // nil without a join token
	// streamMetadata authenticates the xDS stream (nil without a join token).
	streamMetadata metadata.MD
	secrets        *secrets.Store
}

// newSecurity sets up the connection to the control plane, the rotator and the
// secrets store from the bootstrap. It does no I/O beyond reading the token and CA
// files.
func (p *Proxy) newSecurity() error {
	b := p.cfg.Bootstrap
	creds, err := xdsCredentials(b.XDS, b.XDSCAFile, b.XDSServerName)
	if err != nil {
		return err
	}
	conn, err := xdsclient.Dial(b.XDS, creds, 0, 0)
	if err != nil {
		return err
	}
	td := b.TrustDomain
	if td == "" {
		td = identity.DefaultTrustDomain
	}
	sa := b.Node.Metadata.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	id := identity.ID{TrustDomain: td, Namespace: b.Node.Metadata.Namespace, ServiceAccount: sa}
	sec := &security{conn: conn}
	var workload secrets.Workload
	if b.TokenFile != "" {
		if err := sec.startRotator(p, id); err != nil {
			conn.Close()
			return err
		}
		workload = sec.rotator
	}
	sec.secrets = secrets.New(secrets.Config{Identity: id, Workload: workload,
		RenewEvery: b.CertRenewEvery.Std(), Logger: p.cfg.Logger})
	p.sec = sec
	return nil
}

func (s *security) startRotator(p *Proxy, id identity.ID) error {
	b := p.cfg.Bootstrap
	token, err := certclient.ReadToken(b.TokenFile)
	if err != nil {
		return err
	}
	client, err := certclient.New(certclient.Config{Conn: s.conn, Identity: id, Token: token, TTL: b.CertTTL.Std()})
	if err != nil {
		return err
	}
	// The same credentials authenticate the xDS stream, to a control plane that asks.
	s.streamMetadata = certclient.Metadata(token, id)
	s.rotator, err = certclient.NewRotator(certclient.RotatorConfig{
		Fetcher:    client,
		RenewEvery: b.CertRenewEvery.Std(),
		Logger:     p.cfg.Logger,
		OnUpdate: func(c *certclient.Certificate) {
			s.secrets.Renewed(c)
			p.cfg.Logger.Info("workload certificate obtained", "identity", c.Identity.String(),
				"expires", c.NotAfter, "serial", c.TLS.Leaf.SerialNumber.Text(16))
		},
	})
	return err
}

// run runs the rotator, if any, until ctx ends; the returned function waits for it.
func (s *security) run(ctx context.Context) (wait func()) {
	if s.rotator == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.rotator.Run(ctx)
	}()
	return func() { <-done }
}

// certReady reports whether the sidecar holds its certificate, or needs none.
func (s *security) certReady() bool {
	return s.rotator == nil || s.rotator.Current() != nil
}

// checkUpdate rejects what this sidecar cannot apply for lack of TLS material: a
// reference to its certificate when it has none, a cluster whose TLS files cannot be
// read. It runs after runtime.Validate.
func (s *security) checkUpdate(typeURL string, msgs map[string]proto.Message) error {
	if !s.secrets.HasWorkload() {
		if err := runtime.WorkloadSecretUsers(typeURL, msgs); err != nil {
			return err
		}
	}
	if typeURL != runtime.ClusterType {
		return nil
	}
	var errs []error
	for name, m := range msgs {
		u, err := runtime.ClusterTLS(m)
		if err == nil {
			err = s.secrets.CheckFiles(u)
		}
		if err != nil {
			errs = append(errs, &runtime.Error{Type: typeURL, Name: name, Field: "transport_socket", Msg: err.Error()})
		}
	}
	return errors.Join(errs...)
}

// applySecrets swaps in the trust bundle of an accepted SDS update. A bundle that
// disappears is kept: what refers to it is no longer complete, and the last good
// configuration stays.
func (s *security) applySecrets(u xdsclient.Update) {
	r, ok := u.Resources[names.RootCASecret]
	if !ok {
		return
	}
	roots, err := runtime.TrustBundle(r.Message.(*tlsv3.Secret))
	if err != nil {
		return // validated already
	}
	s.secrets.SetTrustBundle(names.RootCASecret, r.Version, roots)
}

// WriteCerts writes the admin endpoint /certs.
func (p *Proxy) WriteCerts(w io.Writer) error { return p.sec.secrets.WriteCerts(w) }

// Secrets is the sidecar's TLS material.
func (p *Proxy) Secrets() *secrets.Store { return p.sec.secrets }

// xdsCredentials are the transport credentials toward the control plane: plaintext
// without a CA file; else TLS 1.2+ verifying the server against the CA file, read
// again at every connection (a root rotation changes it), and serverName (default:
// the host of addr).
func xdsCredentials(addr, caFile, serverName string) (credentials.TransportCredentials, error) {
	if caFile == "" {
		return insecure.NewCredentials(), nil
	}
	if serverName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("xds address %q: %w", addr, err)
		}
		serverName = host
	}
	if _, err := readPool(caFile); err != nil {
		return nil, err
	}
	return &caFileCredentials{file: caFile, serverName: serverName}, nil
}

func readPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the control plane's CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("reading the control plane's CA file %s: no PEM certificate", path)
	}
	return pool, nil
}

// caFileCredentials are gRPC TLS client credentials whose roots are read from a file
// at every handshake.
type caFileCredentials struct {
	file, serverName string
}

var _ credentials.TransportCredentials = (*caFileCredentials)(nil)

func (c *caFileCredentials) config() (credentials.TransportCredentials, error) {
	pool, err := readPool(c.file)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: c.serverName, MinVersion: tls.VersionTLS12}), nil
}

func (c *caFileCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, err := c.config()
	if err != nil {
		return nil, nil, err
	}
	return tc.ClientHandshake(ctx, authority, conn)
}

func (c *caFileCredentials) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("caFileCredentials are client credentials")
}

func (c *caFileCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *caFileCredentials) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

//nolint:staticcheck // part of the interface
func (c *caFileCredentials) OverrideServerName(name string) error {
	c.serverName = name
	return nil
}

package peertls_test

import (
	"context"
	"crypto/fips140"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/peertls"
)

var (
	frontend = identity.New("default", "frontend")
	backend  = identity.New("default", "backend")
)

func newCA(t *testing.T, cfg ca.Config) *ca.CA {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	authority, err := ca.New(cfg)
	if err != nil {
		t.Fatalf("ca.New: %v", err)
	}
	return authority
}

// issue makes a key and has authority sign a certificate for id.
func issue(t *testing.T, authority *ca.CA, id identity.ID, ttl time.Duration) *tls.Certificate {
	t.Helper()
	cert, err := authority.IssueWorkload(id, ttl)
	if err != nil {
		t.Fatalf("IssueWorkload: %v", err)
	}
	return &cert
}

func static(c *tls.Certificate) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return c, nil }
}

type result struct {
	state tls.ConnectionState
	err   error
}

// handshake runs one TLS handshake over loopback and returns both sides' results.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (server, client result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	done := make(chan result, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, serverCfg)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			// In TLS 1.3 the server verifies the client after the client has finished;
			// a read makes the outcome reach the client too.
			tc.Write([]byte("x"))
		}
		done <- result{state: tc.ConnectionState(), err: err}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, clientCfg)
	client.err = tc.HandshakeContext(ctx)
	if client.err == nil {
		_, client.err = tc.Read(make([]byte, 1))
	}
	client.state = tc.ConnectionState()
	conn.Close() // a client that gave up must not leave the server waiting
	return <-done, client
}

func TestHandshake(t *testing.T) {
	mesh := newCA(t, ca.Config{})
	other := newCA(t, ca.Config{})
	meshRoots := peertls.NewBundle(mesh.TrustBundle())
	serving, err := mesh.IssueServing([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name           string
		serverCert     *tls.Certificate
		clientCert     *tls.Certificate
		serverPeers    []identity.ID
		clientPeers    []identity.ID
		clientMaxTLS   uint16
		later          time.Duration // the verifying clocks run this far ahead
		wantServerErr  string
		wantClientErr  string
		wantServerPeer identity.ID
	}{
		{name: "same CA", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, wantServerPeer: frontend},
		{name: "server allows the client", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			serverPeers: []identity.ID{frontend}, clientPeers: []identity.ID{backend}, wantServerPeer: frontend},
		{name: "TLS 1.2", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, clientMaxTLS: tls.VersionTLS12, wantServerPeer: frontend},
		{name: "client from another CA", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, other, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, wantServerErr: "unknown authority"},
		{name: "server from another CA", serverCert: issue(t, other, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, wantClientErr: "unknown authority"},
		{name: "server has the wrong identity", serverCert: issue(t, mesh, frontend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, wantClientErr: "spiffe://cluster.local/ns/default/sa/frontend is not allowed"},
		{name: "client not allowed by the server", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			serverPeers: []identity.ID{backend}, clientPeers: []identity.ID{backend}, wantServerErr: "is not allowed"},
		{name: "expired", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, later: 2 * time.Hour, wantClientErr: "expired"},
		{name: "client certificate without clientAuth", serverCert: issue(t, mesh, backend, time.Hour), clientCert: &serving,
			clientPeers: []identity.ID{backend}, wantServerErr: "lacks extended key usage clientAuth"},
		{name: "TLS 1.1", serverCert: issue(t, mesh, backend, time.Hour), clientCert: issue(t, mesh, frontend, time.Hour),
			clientPeers: []identity.ID{backend}, clientMaxTLS: tls.VersionTLS11, wantServerErr: "unsupported versions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fips140.Enabled() && tt.clientMaxTLS == tls.VersionTLS11 {
				t.Skip("in FIPS 140-3 mode a client cannot even offer TLS 1.1")
			}
			now := func() time.Time { return time.Now().Add(tt.later) }
			serverCfg, err := peertls.ServerConfig(peertls.Config{
				Certificate: static(tt.serverCert), Roots: meshRoots.Pool, Peers: tt.serverPeers,
				NextProtos: []string{"h2", "http/1.1"}, Now: now,
			})
			if err != nil {
				t.Fatal(err)
			}
			clientCfg, err := peertls.ClientConfig(peertls.Config{
				Certificate: static(tt.clientCert), Roots: meshRoots.Pool, Peers: tt.clientPeers,
				NextProtos: []string{"h2"}, Now: now,
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.clientMaxTLS != 0 {
				clientCfg.MinVersion, clientCfg.MaxVersion = tls.VersionTLS10, tt.clientMaxTLS
			}
			server, client := handshake(t, serverCfg, clientCfg)
			if tt.wantServerErr != "" {
				checkErr(t, "server", server.err, tt.wantServerErr)
				if client.err == nil {
					t.Error("the client carried on with a server that refused it")
				}
				return
			}
			if tt.wantClientErr != "" {
				checkErr(t, "client", client.err, tt.wantClientErr)
				if server.err == nil {
					t.Error("the server carried on with a client that refused it")
				}
				return
			}
			checkErr(t, "server", server.err, "")
			checkErr(t, "client", client.err, "")
			got, err := peertls.PeerIdentity(server.state)
			if err != nil || got != tt.wantServerPeer {
				t.Errorf("server sees peer %v, %v; want %v", got, err, tt.wantServerPeer)
			}
			if got, err := peertls.PeerIdentity(client.state); err != nil || got != identity.ID(backend) {
				t.Errorf("client sees peer %v, %v; want %v", got, err, backend)
			}
			wantVersion := uint16(tls.VersionTLS13)
			if tt.clientMaxTLS != 0 {
				wantVersion = tt.clientMaxTLS
			}
			if client.state.Version != wantVersion {
				t.Errorf("negotiated %s, want %s", tls.VersionName(client.state.Version), tls.VersionName(wantVersion))
			}
			if client.state.NegotiatedProtocol != "h2" {
				t.Errorf("ALPN = %q, want h2", client.state.NegotiatedProtocol)
			}
			if client.state.DidResume {
				t.Error("session resumed")
			}
		})
	}
}

func checkErr(t *testing.T, side string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error: %v", side, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s error = %v, want one containing %q", side, err, want)
	}
}

// TestRootRotation follows the rotation procedure: during the overlap, certificates of
// the old root and of the new are both accepted; once the old root is retired, only
// the new. The tls.Configs are built once; only the bundle changes.
func TestRootRotation(t *testing.T) {
	var clockOffset time.Duration
	now := func() time.Time { return time.Now().Add(clockOffset) }
	mesh := newCA(t, ca.Config{CertTTL: time.Hour, Now: now})
	bundle := peertls.NewBundle(mesh.TrustBundle())
	oldServer := issue(t, mesh, backend, 0)
	oldClient := issue(t, mesh, frontend, 0)

	if err := mesh.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	bundle.Set(mesh.TrustBundle()) // as SDS would push it
	newServer := issue(t, mesh, backend, 0)
	newClient := issue(t, mesh, frontend, 0)

	configs := func(server, client *tls.Certificate) (*tls.Config, *tls.Config) {
		s, err := peertls.ServerConfig(peertls.Config{Certificate: static(server), Roots: bundle.Pool, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		c, err := peertls.ClientConfig(peertls.Config{Certificate: static(client), Roots: bundle.Pool, Peers: []identity.ID{backend}, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s, c
	}
	pairs := []struct {
		name           string
		server, client *tls.Certificate
	}{
		{"old server, new client", oldServer, newClient},
		{"new server, old client", newServer, oldClient},
		{"old both", oldServer, oldClient},
		{"new both", newServer, newClient},
	}
	for _, p := range pairs {
		t.Run("overlap/"+p.name, func(t *testing.T) {
			s, c := configs(p.server, p.client)
			server, client := handshake(t, s, c)
			checkErr(t, "server", server.err, "")
			checkErr(t, "client", client.err, "")
		})
	}

	clockOffset = time.Hour + 2*time.Minute
	if err := mesh.RetireOldRoots(); err != nil {
		t.Fatalf("RetireOldRoots: %v", err)
	}
	bundle.Set(mesh.TrustBundle())
	renewedServer := issue(t, mesh, backend, 0)
	renewedClient := issue(t, mesh, frontend, 0)
	t.Run("after retiring/renewed", func(t *testing.T) {
		s, c := configs(renewedServer, renewedClient)
		server, client := handshake(t, s, c)
		checkErr(t, "server", server.err, "")
		checkErr(t, "client", client.err, "")
	})
	t.Run("after retiring/old server refused", func(t *testing.T) {
		// Were it not expired, the old root's certificate would now be unknown.
		clockOffset = 0
		defer func() { clockOffset = time.Hour + 2*time.Minute }()
		s, c := configs(oldServer, renewedClient)
		_, client := handshake(t, s, c)
		checkErr(t, "client", client.err, "unknown authority")
	})
}

func TestConfigRequirements(t *testing.T) {
	mesh := newCA(t, ca.Config{})
	bundle := peertls.NewBundle(mesh.TrustBundle())
	cert := issue(t, mesh, frontend, time.Hour)
	if _, err := peertls.ClientConfig(peertls.Config{Certificate: static(cert), Roots: bundle.Pool}); err == nil {
		t.Error("ClientConfig without expected peers succeeded")
	}
	if _, err := peertls.ServerConfig(peertls.Config{Roots: bundle.Pool}); err == nil {
		t.Error("ServerConfig without a certificate succeeded")
	}
	cfg, err := peertls.ServerConfig(peertls.Config{Certificate: static(cert), Roots: bundle.Pool})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.SessionTicketsDisabled || cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAnyClientCert {
		t.Errorf("server config: tickets disabled %v, min version %x, client auth %v",
			cfg.SessionTicketsDisabled, cfg.MinVersion, cfg.ClientAuth)
	}
	var empty peertls.Bundle
	if empty.Pool() != nil {
		t.Error("empty Bundle has a pool")
	}
}

package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/serverlimits/attacktest"
)

// TestHostileTLS attacks the STRICT mutual TLS inbound listener: garbage records,
// plaintext, a handshake that never completes, no client certificate, a foreign
// certificate, an expired one from the mesh's own CA, and a wrong SNI. Each ends in
// a refused handshake or closed connection (never an answer from the app unless
// the client holds a valid mesh certificate), the listener counts the failures, a
// well-behaved client is served after each, and goroutines return to baseline.
func TestHostileTLS(t *testing.T) {
	lim := hostileLimits()
	m := startTLSMesh(t, tlsMeshOpts{mode: xdstest.Strict, limits: lim})
	addr := m.inHTTP
	valid := m.certFor(clientID)
	good := mtlsClient(t, m.ca, valid, echoID)
	probe := attacktest.StartProbe()

	// attacker's TLS settings: it does not verify the sidecar.
	attacker := func(cert *tls.Certificate, sni string) *tls.Config {
		cfg := &tls.Config{InsecureSkipVerify: true, ServerName: sni, NextProtos: []string{"http/1.1"}}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return cfg
	}
	tests := []struct {
		name   string
		attack func() (string, error) // what happened, and an error when it was served
		served bool                   // a valid client certificate: the app answers
	}{
		{name: "garbage TLS record", attack: func() (string, error) {
			return rawAttack(addr, append([]byte{22, 3, 1, 0, 64}, make([]byte, 64)...), 5*time.Second)
		}},
		{name: "plaintext HTTP", attack: func() (string, error) {
			return rawAttack(addr, []byte("GET / HTTP/1.1\r\nHost: echo\r\n\r\n"), 20*time.Second)
		}},
		{name: "handshake never completes", attack: func() (string, error) {
			start := time.Now()
			out, err := rawAttack(addr, []byte{22, 3, 1, 2, 0, 1}, 10*time.Second)
			if took := time.Since(start); err == nil && took > lim.HandshakeTimeout+2*time.Second {
				err = errors.New("closed long after the handshake timeout: " + took.String())
			}
			return out, err
		}},
		{name: "no client certificate", attack: func() (string, error) { return tlsAttack(addr, attacker(nil, "")) }},
		{name: "foreign certificate", attack: func() (string, error) { return tlsAttack(addr, attacker(foreignCert(t, clientID), "")) }},
		{name: "expired mesh certificate", attack: func() (string, error) {
			return tlsAttack(addr, attacker(expiredCert(t, filepath.Dir(m.ca.TokenFile), clientID), ""))
		}},
		{name: "wrong SNI without certificate", attack: func() (string, error) {
			return tlsAttack(addr, attacker(nil, "evil.example.com"))
		}},
		// SNI selects nothing on an inbound listener: the certificate is the identity.
		{name: "wrong SNI with a valid certificate", served: true, attack: func() (string, error) {
			return tlsAttack(addr, attacker(valid, "evil.example.com"))
		}},
	}
	ssl := func() uint64 { return m.server.stats.Listener(names.InboundListener(80)).SSLErrors.Load() }
	for _, tt := range tests {
		before := ssl()
		start := time.Now()
		out, err := tt.attack()
		switch {
		case tt.served && err == nil:
			t.Errorf("%s: refused (%s), want served", tt.name, out)
		case !tt.served && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		}
		if resp, err := good.Get("https://" + addr + "/"); err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: well-behaved client after the attack: %v, %v", tt.name, resp, err)
		} else {
			resp.Body.Close()
		}
		t.Logf("%s: %s after %v; ssl.connection_error +%d", tt.name, out, time.Since(start).Round(time.Millisecond), ssl()-before)
	}
	// The HTTP/1.1 attacks, from a client with a valid certificate, over mTLS.
	attacktest.CheckHTTP1(t, "inbound over mTLS", addr, attacker(valid, ""), "echo", lim.IdleTimeout)
	g, heap, err := probe.Settle(10*time.Second, 10, 16<<20)
	if err != nil {
		t.Error(err)
	}
	t.Logf("TLS attacks: %d sent; %s; settled at %d goroutines, %d KiB", len(tests), probe, g, heap>>10)
}

// rawAttack writes b to addr and waits up to timeout for the sidecar to close the
// connection; an answer, or none, is an error.
func rawAttack(addr string, b []byte, timeout time.Duration) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	c.Write(b)
	n, err := io.Copy(io.Discard, c)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "", errors.New("connection still open")
	case n > 0 && b[0] != 22:
		return "", errors.New("the sidecar answered plaintext")
	}
	return "connection closed", nil
}

// tlsAttack completes what it can of a handshake with cfg and sends a request; an
// answer is an error (nil when the sidecar refused).
func tlsAttack(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "handshake refused: " + err.Error(), nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: echo\r\n\r\n"); err != nil {
		return "refused at the first write: " + err.Error(), nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "refused after the handshake: " + err.Error(), nil
	}
	resp.Body.Close()
	return "served", errors.New("served: " + resp.Status)
}

// foreignCert is a self-signed certificate that claims id.
func foreignCert(t *testing.T, id identity.ID) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{id.URL()}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// expiredCert is a certificate for id from the mesh's CA (its root in dataDir) that
// expired 50 seconds ago: the CA's clock is set back for it.
func expiredCert(t *testing.T, dataDir string, id identity.ID) *tls.Certificate {
	t.Helper()
	past := time.Now().Add(-50 * time.Second)
	authority, err := ca.New(ca.Config{DataDir: dataDir, Now: func() time.Time { return past }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := authority.IssueWorkload(id, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Before(time.Now()) {
		t.Fatalf("certificate not expired: %v", cert.Leaf.NotAfter)
	}
	return &cert
}

// TestXDSStreamAuthenticated: against a control plane that authenticates xDS
// streams, sidecars with a join token send it on their stream and get their
// configuration (they become ready); a stream without credentials is refused.
func TestXDSStreamAuthenticated(t *testing.T) {
	m := startTLSMesh(t, tlsMeshOpts{mode: xdstest.Permissive, xdsAuth: true})
	conn, err := grpc.NewClient("passthrough:///"+m.xds.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("ADS stream without credentials: %v, want Unauthenticated", err)
	}
	eventually(t, 10*time.Second, "a request between the authenticated sidecars", func() error {
		code, body, err := get(http.DefaultClient, "http://"+m.outbound+"/", "echo")
		if err == nil && code != 200 {
			err = fmt.Errorf("%d %s", code, body)
		}
		return err
	})
	t.Log("sidecars with a join token got their configuration over authenticated streams and carry traffic; a stream without credentials is refused Unauthenticated")
}

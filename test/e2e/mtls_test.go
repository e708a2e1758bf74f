package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"trellis.dev/trellis/internal/ca"
)

// Mutual TLS (issue 4) in local mode: `trellis up` always runs the CA, and every
// sidecar holds a certificate for its workload's SPIFFE ID.

// mtlsEcho is a fortio workload of service echo with service account echo-sa.
func mtlsEcho() string {
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo, labels: {app: echo}}
spec:
  service: echo
  serviceAccount: echo-sa
  ports: [{name: http, port: 8080}]
  command: %s
`, fortioServer("$(PORT)", "", ""))
}

const strictMesh = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: trellis-system}
spec:
  mtls: {mode: STRICT}
`

const (
	echoSPIFFE   = "spiffe://cluster.local/ns/default/sa/echo-sa"
	clientSPIFFE = "spiffe://cluster.local/ns/default/sa/default"
	spoofedXFCC  = "By=spiffe://evil.example/ns/x/sa/y;URI=spiffe://cluster.local/ns/default/sa/admin"
)

// meshRoots is the trust bundle the control plane of m keeps in its data directory.
func meshRoots(t *testing.T, m *meshRun) *x509.CertPool {
	t.Helper()
	path := ca.TrustBundleFile(filepath.Join(filepath.Dir(m.up.statePath), "data", "control"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("no certificate in %s", path)
	}
	return pool
}

// debugThroughMesh asks echo's fortio /debug (which echoes the request headers)
// through the client's sidecar, with a spoofed XFCC header.
func debugThroughMesh(ctx context.Context, m *meshRun) (string, error) {
	a, err := do(ctx, m.c, request{target: "http://echo:8080/debug", header: http.Header{"X-Forwarded-Client-Cert": {spoofedXFCC}}})
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", a.status, a.body)
	}
	return a.body, nil
}

// xfccLine is the x-forwarded-client-cert fortio echoed, or "".
func xfccLine(body string) string {
	for _, line := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "X-Forwarded-Client-Cert") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// plaintextGet sends a plaintext GET straight to a sidecar's inbound listener.
func plaintextGet(ctx context.Context, addr string, header http.Header) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header = header
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestMutualTLSStrict(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, mtlsEcho()+strictMesh)
	inbound := m.st.workload(t, "echo").InboundPorts["http"]
	var body string
	eventually(ctx, t, "echo through the mesh", func() error {
		var err error
		body, err = debugThroughMesh(ctx, m)
		return err
	})

	t.Run("the app sees the caller in XFCC, never a spoofed one", func(t *testing.T) {
		got := xfccLine(body)
		if !strings.HasPrefix(got, "By="+echoSPIFFE+";Hash=") || !strings.HasSuffix(got, ";URI="+clientSPIFFE) {
			t.Errorf("XFCC the app saw = %q, want By=%s;Hash=...;URI=%s", got, echoSPIFFE, clientSPIFFE)
		}
		if strings.Contains(body, "evil.example") || strings.Contains(body, "sa/admin") {
			t.Errorf("the spoofed XFCC reached the app:\n%s", body)
		}
	})

	t.Run("plaintext straight to the inbound listener is refused", func(t *testing.T) {
		// The listener may take a moment to switch to STRICT after the first config.
		eventually(ctx, t, "plaintext refused", func() error {
			code, _, err := plaintextGet(ctx, inbound, http.Header{})
			if err == nil {
				return fmt.Errorf("plaintext answered %d", code)
			}
			return nil
		})
	})

	t.Run("the inbound listener presents the workload's SPIFFE ID", func(t *testing.T) {
		roots := meshRoots(t, m)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", inbound,
			&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		chain := conn.ConnectionState().PeerCertificates
		leaf := chain[0]
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != echoSPIFFE {
			t.Errorf("inbound certificate URI SANs %v, want [%s]", leaf.URIs, echoSPIFFE)
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("inbound certificate does not verify against the mesh's roots: %v", err)
		}
	})

	t.Run("a client certificate from another CA is refused", func(t *testing.T) {
		cert := foreignCert(t, clientSPIFFE)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		}}
		resp, err := c.Get("https://" + inbound + "/debug")
		if err == nil {
			resp.Body.Close()
			t.Errorf("a certificate from another CA got %d, want the handshake refused", resp.StatusCode)
		}
	})
}

func TestMutualTLSPermissive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, mtlsEcho())
	inbound := m.st.workload(t, "echo").InboundPorts["http"]
	var body string
	eventually(ctx, t, "echo through the mesh", func() error {
		var err error
		body, err = debugThroughMesh(ctx, m)
		return err
	})
	if got := xfccLine(body); !strings.HasSuffix(got, ";URI="+clientSPIFFE) {
		t.Errorf("through the mesh (mutual TLS): XFCC %q, want the caller's SPIFFE ID", got)
	}
	code, plain, err := plaintextGet(ctx, inbound, http.Header{"X-Forwarded-Client-Cert": {spoofedXFCC}})
	if err != nil || code != http.StatusOK {
		t.Fatalf("plaintext straight to the inbound listener: %d, %v; want 200", code, err)
	}
	if got := xfccLine(plain); got != "" {
		t.Errorf("plaintext: the app saw XFCC %q, want none (the spoofed one removed)", got)
	}
}

func TestMutualTLSControlPlaneRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outbound := freeAddr(t)
	client := clientWorkload(outbound)
	mesh := mtlsEcho() + strictMesh + client
	up, _ := startUp(t, mesh, "--cert-renew-every", "2s")
	st := up.waitState(ctx, t, 2)
	c := proxyClient(outbound)
	eventually(ctx, t, "echo through the mesh", func() error {
		_, _, err := getOK(ctx, c)
		return err
	})

	// Steady load while the control plane is killed and restarted, and certificates
	// keep rotating every 2s.
	stop := steadyLoad(ctx, outbound, 2)
	old := st.ControlPlane.PID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the control plane: %v", err)
	}
	eventually(ctx, t, "the control plane restarted", func() error {
		next, err := up.readState()
		if err != nil {
			return err
		}
		if next.ControlPlane.PID == 0 || next.ControlPlane.PID == old {
			return fmt.Errorf("control plane pid %d", next.ControlPlane.PID)
		}
		return nil
	})
	// The sidecars reconnect and renew again: wait for a renewal after the restart.
	admin := st.workload(t, "echo").Admin
	restarted := time.Now()
	eventually(ctx, t, "a certificate renewed from the restarted control plane", func() error {
		received, err := certReceived(ctx, admin)
		if err != nil {
			return err
		}
		if !received.After(restarted) {
			return fmt.Errorf("certificate received %s, before the restart at %s", received, restarted)
		}
		return nil
	})
	sent, failed := stop()
	t.Logf("FAULT scenario=control-plane-sigkill-mtls sent=%d lost=%d limit=%q", sent, len(failed), "0 lost")
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed across the restart; first: %s", len(failed), sent, failed[0])
	}
	if sent < 20 {
		t.Errorf("only %d requests sent", sent)
	}
}

// getOK sends one GET to echo through c and fails unless it answers 200.
func getOK(ctx context.Context, c *http.Client) (int, string, error) {
	resp, body, err := get(ctx, c, "http://echo:8080/", "")
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, body, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return resp.StatusCode, body, nil
}

// certReceived is when the sidecar at admin received its current certificate
// (its /certs).
func certReceived(ctx context.Context, admin string) (time.Time, error) {
	var doc struct {
		Certificates []struct {
			Name     string    `json:"name"`
			Received time.Time `json:"received"`
		} `json:"certificates"`
	}
	resp, body, err := get(ctx, &http.Client{Timeout: 5 * time.Second}, "http://"+admin+"/certs", "")
	if err != nil {
		return time.Time{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("/certs: %d", resp.StatusCode)
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return time.Time{}, err
	}
	for _, c := range doc.Certificates {
		if c.Name == "default" {
			return c.Received, nil
		}
	}
	return time.Time{}, fmt.Errorf("/certs has no default certificate: %s", body)
}

// foreignCert is a certificate for the SPIFFE ID id from a CA made here, outside the
// mesh.
func foreignCert(t *testing.T, id string) tls.Certificate {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(id)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, rootCert, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestMutualTLSRootRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outbound := freeAddr(t)
	client := clientWorkload(outbound)
	up, _ := startUp(t, mtlsEcho()+strictMesh+client, "--cert-renew-every", "1s")
	st := up.waitState(ctx, t, 2)
	c := proxyClient(outbound)
	eventually(ctx, t, "echo through the mesh", func() error {
		_, _, err := getOK(ctx, c)
		return err
	})
	var raw struct {
		ControlPlane struct{ Monitoring string } `json:"controlPlane"`
	}
	data, err := os.ReadFile(up.statePath)
	if err != nil || json.Unmarshal(data, &raw) != nil || raw.ControlPlane.Monitoring == "" {
		t.Fatalf("no monitoring address in the state: %v %s", err, data)
	}
	issuers := func() (map[string]string, error) {
		out := map[string]string{}
		for _, w := range []string{"echo", "client"} {
			var doc struct {
				Certificates []struct {
					Chain []struct{ Issuer string } `json:"chain"`
				} `json:"certificates"`
				TrustBundle struct {
					Roots []struct{ Subject string } `json:"roots"`
				} `json:"trustBundle"`
			}
			_, body, err := get(ctx, &http.Client{Timeout: 5 * time.Second}, "http://"+st.workload(t, w).Admin+"/certs", "")
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Certificates) == 0 {
				return nil, fmt.Errorf("%s /certs: %v %s", w, err, body)
			}
			out[w] = fmt.Sprintf("%s (%d roots)", doc.Certificates[0].Chain[0].Issuer, len(doc.TrustBundle.Roots))
		}
		return out, nil
	}
	before, err := issuers()
	if err != nil {
		t.Fatal(err)
	}

	// Fortio's load across the rotation; certificates renew every second meanwhile.
	l := startLoad(t, outbound, "echo:8080", faultLoad)
	pause(ctx, time.Second)
	resp, err := http.Post("http://"+raw.ControlPlane.Monitoring+"/ca/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ca/rotate: %d", resp.StatusCode)
	}
	eventually(ctx, t, "certificates from the new root, both roots trusted", func() error {
		now, err := issuers()
		if err != nil {
			return err
		}
		for w, b := range before {
			if now[w] == b || !strings.HasSuffix(now[w], "(2 roots)") {
				return fmt.Errorf("%s: %s, before %s", w, now[w], b)
			}
		}
		return nil
	})
	// The load goes on across a few more renewals under the new root.
	report(t, "cert-and-ca-root-rotation", l.wait(t), 0, "0 lost")
	if _, _, err := getOK(ctx, c); err != nil {
		t.Errorf("after the rotation: %v", err)
	}
}

// steadyLoad sends GETs to echo through the outbound listener from workers goroutines
// until the returned stop is called, which says how many were sent and which failed.
func steadyLoad(ctx context.Context, outbound string, workers int) (stop func() (int, []string)) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu     sync.Mutex
		sent   int
		failed []string
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			lc := proxyClient(outbound)
			for ctx.Err() == nil {
				_, _, err := getOK(ctx, lc)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				sent++
				if err != nil {
					failed = append(failed, err.Error())
				}
				mu.Unlock()
			}
		})
	}
	return func() (int, []string) {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return sent, failed
	}
}

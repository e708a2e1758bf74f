package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/certinfo"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// xfccOf extracts what the header app saw of x-forwarded-client-cert.
var xfccOf = regexp.MustCompile(`xfcc=\[([^\]]*)\]`)

func TestMutualTLS(t *testing.T) {
	for _, mode := range []xdstest.Mode{xdstest.Strict, xdstest.Permissive} {
		t.Run(string(mode), func(t *testing.T) { testMutualTLS(t, mode) })
	}
}

func testMutualTLS(t *testing.T, mode xdstest.Mode) {
	m := startTLSMesh(t, tlsMeshOpts{mode: mode, xdsTLS: mode == xdstest.Strict})
	outbound := &http.Client{Timeout: 10 * time.Second}
	tester := identity.New("default", "tester")
	testerCert := m.certFor(tester)

	t.Run("through the mesh", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+m.outbound+"/", nil)
		req.Host = "echo"
		req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://evil/ns/x/sa/y;URI=spiffe://cluster.local/ns/default/sa/admin")
		resp, err := outbound.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET through the mesh = %d %s", resp.StatusCode, body)
		}
		got := xfccOf.FindStringSubmatch(string(body))
		if got == nil {
			t.Fatalf("app answered %q", body)
		}
		want := regexp.MustCompile(`^By=` + regexp.QuoteMeta(echoID.String()) + `;Hash=[0-9a-f]{64};URI=` + regexp.QuoteMeta(clientID.String()) + `$`)
		if !want.MatchString(got[1]) {
			t.Errorf("app saw XFCC %q, want By=<echo>;Hash=<hex>;URI=<client> and nothing spoofed", got[1])
		}
	})

	t.Run("connections are reused", func(t *testing.T) {
		handshakes := func() string {
			var b bytes.Buffer
			m.client.WriteStats(&b)
			return regexp.MustCompile(`(?m)^cluster\.outbound\|80\|\|echo[^ ]*\.ssl\.handshake (\d+)$`).FindString(b.String())
		}
		before := handshakes()
		for range 20 {
			if err := expect(outbound, "http://"+m.outbound+"/", "echo", 200, "xfcc=[By="); err != nil {
				t.Fatal(err)
			}
		}
		if after := handshakes(); after != before || before == "" {
			t.Errorf("handshakes before %q, after 20 requests %q: want one connection reused", before, after)
		}
	})

	t.Run("h2 over mTLS", func(t *testing.T) {
		if err := expect(outbound, "http://"+m.outbound+"/", "h2:8080", 200, "proto=HTTP/2.0"); err != nil {
			t.Error(err)
		}
	})

	t.Run("tcp over mTLS", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", m.tcpBind, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "ping over tls")
		conn.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != "ping over tls" {
			t.Errorf("echo = %q, %v", got, err)
		}
	})

	t.Run("inbound certificate", func(t *testing.T) {
		conn, err := tls.Dial("tcp", m.inHTTP, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*testerCert}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		leaf := conn.ConnectionState().PeerCertificates[0]
		var uris []string
		for _, u := range leaf.URIs {
			uris = append(uris, u.String())
		}
		if diff := cmp.Diff([]string{echoID.String()}, uris); diff != "" {
			t.Errorf("inbound certificate URI SANs (-want +got):\n%s", diff)
		}
	})

	t.Run("direct mTLS with a spoofed XFCC", func(t *testing.T) {
		client := mtlsClient(t, m.ca, testerCert, echoID)
		req, _ := http.NewRequest(http.MethodGet, "https://"+m.inHTTP+"/", nil)
		req.Header.Set("X-Forwarded-Client-Cert", "URI=spiffe://cluster.local/ns/default/sa/admin")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := xfccOf.FindStringSubmatch(string(body)); got == nil || !strings.HasSuffix(got[1], ";URI="+tester.String()) || strings.Contains(got[1], "admin") {
			t.Errorf("app saw %q, want only the XFCC set by the sidecar for %s", body, tester)
		}
	})

	t.Run("refused clients", func(t *testing.T) {
		other := xdstest.NewCA(t, 0)
		otherXDS := xdstest.StartWith(t, "127.0.0.1:0", nil, xdstest.Options{Register: other.Register})
		foreign := workloadCert(t, otherXDS.Addr, other.Token, tester, nil)
		for _, tt := range []struct {
			name string
			cert *tls.Certificate
		}{
			{name: "certificate from another CA", cert: foreign},
			{name: "no certificate", cert: nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				client := mtlsClient(t, m.ca, tt.cert, echoID)
				resp, err := client.Get("https://" + m.inHTTP + "/")
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET = %d, want the handshake refused", resp.StatusCode)
				}
			})
		}
	})

	t.Run("plaintext straight to the inbound listener", func(t *testing.T) {
		got, err := rawRequest(m.inHTTP)
		switch mode {
		case xdstest.Strict:
			if err == nil {
				t.Errorf("STRICT answered plaintext: %q", got)
			}
		default:
			if err != nil || !strings.Contains(got, "200 OK") || !strings.Contains(got, "xfcc=[]") {
				t.Errorf("PERMISSIVE plaintext = %q, %v; want 200 and no XFCC", got, err)
			}
		}
	})

	t.Run("plaintext with a spoofed XFCC", func(t *testing.T) {
		if mode == xdstest.Strict {
			t.Skip("refused anyway")
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+m.inHTTP+"/", nil)
		req.Header.Set("X-Forwarded-Client-Cert", "URI=spiffe://cluster.local/ns/default/sa/admin")
		if err := expectReq(req, 200, "xfcc=[]"); err != nil {
			t.Error(err)
		}
	})

	t.Run("certs", func(t *testing.T) {
		resp, err := http.Get("http://" + m.server.AdminAddr() + "/certs")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc certinfo.Certs
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
		}
		if doc.Identity != echoID.String() || len(doc.Certificates) != 1 || doc.Certificates[0].Name != "default" ||
			len(doc.Certificates[0].Chain) == 0 || !cmp.Equal(doc.Certificates[0].Chain[0].URIs, []string{echoID.String()}) {
			t.Errorf("/certs = %+v", doc)
		}
		if doc.TrustBundle == nil || doc.TrustBundle.Name != "ROOTCA" || doc.TrustBundle.Version != "1" ||
			len(doc.TrustBundle.Roots) != 1 || !doc.TrustBundle.Roots[0].IsCA {
			t.Errorf("/certs trustBundle = %+v", doc.TrustBundle)
		}
		var raw bytes.Buffer
		if err := m.server.WriteCerts(&raw); err != nil || strings.Contains(strings.ToLower(raw.String()), "private") {
			t.Errorf("/certs shows a private key or fails: %v", err)
		}
	})

	t.Run("a changed transport socket gets new connections", func(t *testing.T) {
		handshakes := func() int {
			var b bytes.Buffer
			m.client.WriteStats(&b)
			var n int
			for _, line := range strings.Split(b.String(), "\n") {
				if strings.HasPrefix(line, "cluster.outbound|80||echo") && strings.Contains(line, ".ssl.handshake ") {
					fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
				}
			}
			return n
		}
		if err := expect(outbound, "http://"+m.outbound+"/", "echo", 200, "xfcc=[By="); err != nil {
			t.Fatal(err)
		}
		before := handshakes()
		m.extraIDs = []string{"spiffe://cluster.local/ns/default/sa/echo-canary"}
		defer func() { m.extraIDs = nil }()
		m.publish("2", m.ca.RootCA())
		eventually(t, 10*time.Second, "a new connection under the new settings", func() error {
			if err := expect(outbound, "http://"+m.outbound+"/", "echo", 200, "xfcc=[By="); err != nil {
				return err
			}
			if handshakes() == before {
				return errNotYet
			}
			return nil
		})
		after := handshakes()
		for range 10 {
			if err := expect(outbound, "http://"+m.outbound+"/", "echo", 200, "xfcc=[By="); err != nil {
				t.Fatal(err)
			}
		}
		if n := handshakes(); n != after {
			t.Errorf("%d handshakes for 10 requests after the change; want the new connection reused", n-after)
		}
	})

	t.Run("config dump shows the trust bundle", func(t *testing.T) {
		if err := expect(http.DefaultClient, "http://"+m.server.AdminAddr()+"/config_dump", "", 200, `"ROOTCA"`); err != nil {
			t.Error(err)
		}
	})
}

func expectReq(req *http.Request, code int, want string) error {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code || !strings.Contains(string(body), want) {
		return fmt.Errorf("%s %s = %d %q, want %d containing %q", req.Method, req.URL, resp.StatusCode, body, code, want)
	}
	return nil
}

func TestMutualTLSRotationLosesNothing(t *testing.T) {
	m := startTLSMesh(t, tlsMeshOpts{mode: xdstest.Strict, renewEvery: 700 * time.Millisecond})
	serial := func(p *Proxy) string { return p.Secrets().Certs().Certificates[0].Chain[0].Serial }
	first := map[*Proxy]string{m.client: serial(m.client), m.server: serial(m.server)}
	stop := m.load(2)
	// Every certificate is renewed at least twice under load.
	for _, p := range []*Proxy{m.client, m.server} {
		seen := map[string]bool{first[p]: true}
		eventually(t, 15*time.Second, "certificate renewed twice", func() error {
			seen[serial(p)] = true
			if len(seen) < 3 {
				return fmt.Errorf("serials seen %v", seen)
			}
			return nil
		})
	}
	// Then the root: the bundle carries both roots, certificates move to the new one.
	if err := m.ca.CA.Rotate(); err != nil {
		t.Fatal(err)
	}
	m.publish("2", m.ca.RootCA())
	newRoot := m.ca.CA.TrustBundle()[len(m.ca.CA.TrustBundle())-1]
	for _, p := range []*Proxy{m.client, m.server} {
		eventually(t, 15*time.Second, "certificate from the new root", func() error {
			cur := p.Secrets().Certs()
			if len(cur.TrustBundle.Roots) != 2 {
				return fmt.Errorf("%d roots", len(cur.TrustBundle.Roots))
			}
			if got := cur.Certificates[0].Chain[0].Issuer; got != newRoot.Subject.String() {
				return fmt.Errorf("issuer %s", got)
			}
			return nil
		})
	}
	// A few more rounds of renewal under the new root.
	time.Sleep(1500 * time.Millisecond) // keep the load running across renewals, not a wait for a condition
	sent, failed := stop()
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed during rotations; first: %s", len(failed), sent, failed[0])
	}
	if sent < 50 {
		t.Errorf("only %d requests sent", sent)
	}
	t.Logf("%d requests, no failure", sent)
}

func TestMutualTLSWithoutControlPlane(t *testing.T) {
	m := startTLSMesh(t, tlsMeshOpts{mode: xdstest.Strict, renewEvery: 2 * time.Second})
	stop := m.load(1)
	m.xds.Stop()
	eventually(t, 10*time.Second, "sidecars see the control plane gone", func() error {
		if m.client.client.Connected() || m.server.client.Connected() {
			return errNotYet
		}
		return nil
	})
	// New connections too: a fresh client through the mesh, and a direct handshake.
	noKeepAlive := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 5 {
		if err := expect(noKeepAlive, "http://"+m.outbound+"/", "echo", 200, "xfcc=[By="); err != nil {
			t.Fatal(err)
		}
	}
	m.restartXDS()
	eventually(t, 20*time.Second, "sidecars reconnect", func() error {
		if !m.client.client.Connected() || !m.server.client.Connected() {
			return errNotYet
		}
		return nil
	})
	sent, failed := stop()
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed while the control plane was away; first: %s", len(failed), sent, failed[0])
	}
}

func TestMutualTLSReadinessAndRejections(t *testing.T) {
	m := startTLSMesh(t, tlsMeshOpts{mode: xdstest.Permissive})

	t.Run("not ready without a certificate", func(t *testing.T) {
		bad := t.TempDir() + "/token"
		if err := os.WriteFile(bad, []byte(strings.Repeat("0", 64)), 0o600); err != nil {
			t.Fatal(err)
		}
		m.xds.Set(t, "badtoken.default", "1", xdstest.InboundHTTPListener("inbound|80", freeAddr(t), xdstest.Permissive, trustDomain,
			xdstest.RouteConfig("inbound|80", xdstest.VirtualHost("inbound", []string{"*"}, "inbound|80||"))),
			xdstest.StaticCluster("inbound|80||", false, m.app), m.ca.RootCA())
		p := m.startSidecar("badtoken.default", "echo", bad)
		eventually(t, 10*time.Second, "configuration applied", func() error {
			if p.Current() == nil {
				return errNotYet
			}
			return nil
		})
		if p.Ready() {
			t.Error("a sidecar without a certificate says it is ready")
		}
	})

	t.Run("no token file: references to default are rejected", func(t *testing.T) {
		b := &bootstrap.Bootstrap{
			Node:  bootstrap.Node{ID: "notoken.default", Cluster: "echo", Metadata: bootstrap.Metadata{Workload: "notoken", Namespace: "default"}},
			XDS:   m.xds.Addr,
			Admin: "127.0.0.1:0",
		}
		m.xds.Set(t, b.Node.ID, "1", xdstest.InboundHTTPListener("inbound|80", freeAddr(t), xdstest.Strict, trustDomain,
			xdstest.RouteConfig("inbound|80", xdstest.VirtualHost("inbound", []string{"*"}, "inbound|80||"))),
			xdstest.StaticCluster("inbound|80||", false, m.app), m.ca.RootCA())
		runProxy(t, b)
		eventually(t, 10*time.Second, "NACK naming the field", func() error {
			for _, r := range m.xds.Requests() {
				if strings.Contains(r.ErrorDetail, `filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: secret "default" is not available`) {
					return nil
				}
			}
			return errNotYet
		})
	})
}

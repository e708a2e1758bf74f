package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/peertls"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/serverlimits"
)

const trustDomain = "cluster.local"

var (
	clientID = identity.New("default", "client")
	echoID   = identity.New("default", "echo")
)

// tlsMesh is a client sidecar and a server sidecar that get their certificates from a
// real CA (internal/ca behind casvc) served beside a real xDS server, which sends them
// hand-built mutual TLS resources.
type tlsMesh struct {
	t    *testing.T
	opts tlsMeshOpts
	ca   *xdstest.CA
	xds  *xdstest.Server
	sopt xdstest.Options

	client, server *Proxy

	// extraIDs are more identities the client accepts from the server.
	extraIDs []string

	outbound, tcpBind     string // client sidecar
	inHTTP, inH2, inTCP   string // server sidecar
	app, h2app, tcpEchoer string
}

type tlsMeshOpts struct {
	mode       xdstest.Mode
	certTTL    time.Duration
	renewEvery time.Duration
	xdsTLS     bool
	// limits are the sidecars' (zero: the defaults).
	limits serverlimits.Limits
	// xdsAuth makes the control plane authenticate xDS streams as CSRs.
	xdsAuth bool
}

func startTLSMesh(t *testing.T, opts tlsMeshOpts) *tlsMesh {
	t.Helper()
	m := &tlsMesh{t: t, opts: opts, ca: xdstest.NewCA(t, opts.certTTL),
		outbound: freeAddr(t), tcpBind: freeAddr(t), inHTTP: freeAddr(t), inH2: freeAddr(t), inTCP: freeAddr(t)}
	m.app = hostOf(headerApp(t, false).URL)
	m.h2app = hostOf(headerApp(t, true).URL)
	m.tcpEchoer = tcpEcho(t)
	m.sopt = xdstest.Options{Register: m.ca.Register}
	if opts.xdsAuth {
		m.sopt.GRPC = []grpc.ServerOption{grpc.ChainStreamInterceptor(m.ca.Service.StreamInterceptor())}
	}
	if opts.xdsTLS {
		cert, err := m.ca.CA.IssueServing([]string{"127.0.0.1"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		m.sopt.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	m.xds = xdstest.StartWith(t, "127.0.0.1:0", nil, m.sopt)
	m.publish("1", m.ca.RootCA())
	m.server = m.startSidecar(serverNode, "echo", m.ca.TokenFile)
	m.client = m.startSidecar(clientNode, "client", m.ca.TokenFile)
	for _, p := range []*Proxy{m.server, m.client} {
		eventually(t, 15*time.Second, "sidecar ready", func() error {
			return expect(http.DefaultClient, "http://"+p.AdminAddr()+"/ready", "", 200, "ready")
		})
	}
	return m
}

// restartXDS starts the control plane again at the same address, with the same CA.
func (m *tlsMesh) restartXDS() {
	m.xds = xdstest.StartWith(m.t, m.xds.Addr, nil, m.sopt)
	m.publish("1", m.ca.RootCA())
}

func (m *tlsMesh) startSidecar(node, sa, tokenFile string) *Proxy {
	b := &bootstrap.Bootstrap{
		Node: bootstrap.Node{ID: node, Cluster: sa, Metadata: bootstrap.Metadata{
			Workload: strings.Split(node, ".")[0], Namespace: "default", ServiceAccount: sa}},
		XDS:            m.xds.Addr,
		Admin:          "127.0.0.1:0",
		TokenFile:      tokenFile,
		TrustDomain:    trustDomain,
		CertTTL:        bootstrap.Duration(m.opts.certTTL),
		CertRenewEvery: bootstrap.Duration(m.opts.renewEvery),
	}
	if m.opts.xdsTLS {
		b.XDSCAFile = m.ca.BundleFile(m.t)
	}
	return runProxyLimited(m.t, b, m.opts.limits)
}

// publish sends both sidecars their configuration with trust bundle root.
func (m *tlsMesh) publish(version string, root *tlsv3.Secret) {
	mode := m.opts.mode
	inRC := func(port uint32) *routev3.RouteConfiguration {
		return xdstest.RouteConfig(names.InboundListener(port), xdstest.VirtualHost("inbound", []string{"*"}, names.InboundCluster(port)))
	}
	server := []proto.Message{
		xdstest.InboundHTTPListener(names.InboundListener(80), m.inHTTP, mode, trustDomain, inRC(80)),
		xdstest.InboundHTTPListener(names.InboundListener(8080), m.inH2, mode, trustDomain, inRC(8080)),
		xdstest.InboundTCPListener(names.InboundListener(9000), m.inTCP, mode, trustDomain, names.InboundCluster(9000)),
		xdstest.StaticCluster(names.InboundCluster(80), false, m.app),
		xdstest.StaticCluster(names.InboundCluster(8080), true, m.h2app),
		xdstest.StaticCluster(names.InboundCluster(9000), false, m.tcpEchoer),
		root,
	}
	echoC := names.OutboundCluster(echoFQDN, 80)
	h2C := names.OutboundCluster(h2FQDN, 8080)
	tcpC := names.OutboundCluster(tcpFQDN, 9000)
	ids := append([]string{echoID.String()}, m.extraIDs...)
	if mode == xdstest.Disable {
		ids = nil
	}
	meshTLS := func(c *clusterv3.Cluster, fqdn string, port uint32, alpn []string) proto.Message {
		if mode == xdstest.Disable {
			return c
		}
		return xdstest.MeshTLS(c, trustDomain, names.UpstreamSNI(fqdn, port, ""), alpn, ids...)
	}
	client := []proto.Message{
		xdstest.HTTPListener(names.OutboundListener, m.outbound, names.OutboundRoute),
		xdstest.TCPListener(names.UpstreamListener(tcpFQDN, 9000), m.tcpBind, tcpC),
		xdstest.RouteConfig(names.OutboundRoute,
			xdstest.VirtualHost(echoFQDN+":80", []string{"echo", "echo:80"}, echoC),
			xdstest.VirtualHost(h2FQDN+":8080", []string{"h2:8080"}, h2C)),
		meshTLS(xdstest.EDSCluster(echoC, false), echoFQDN, 80, []string{"http/1.1"}), xdstest.Assignment(echoC, m.inHTTP),
		meshTLS(xdstest.EDSCluster(h2C, true), h2FQDN, 8080, []string{"h2"}), xdstest.Assignment(h2C, m.inH2),
		meshTLS(xdstest.EDSCluster(tcpC, false), tcpFQDN, 9000, nil), xdstest.Assignment(tcpC, m.inTCP),
		root,
	}
	m.xds.Set(m.t, serverNode, version, server...)
	m.xds.Set(m.t, clientNode, version, client...)
}

// headerApp is an HTTP app that answers with the XFCC header it received and its
// protocol.
func headerApp(t *testing.T, h2c bool) *httptest.Server {
	t.Helper()
	return startApp(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xfcc=[%s] proto=%s", strings.Join(r.Header.Values("X-Forwarded-Client-Cert"), "|"), r.Proto)
	}, h2c)
}

// certFor obtains a certificate for id from the mesh's CA.
func (m *tlsMesh) certFor(id identity.ID) *tls.Certificate {
	var creds credentials.TransportCredentials
	if m.opts.xdsTLS {
		creds = credentials.NewTLS(&tls.Config{RootCAs: peertls.NewBundle(m.ca.CA.TrustBundle()).Pool(), ServerName: "127.0.0.1"})
	}
	return workloadCert(m.t, m.xds.Addr, m.ca.Token, id, creds)
}

// workloadCert obtains a certificate for id from the CA behind the xDS server at
// addr, as a sidecar would (plaintext when creds is nil).
func workloadCert(t *testing.T, addr, token string, id identity.ID, creds credentials.TransportCredentials) *tls.Certificate {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := certclient.New(certclient.Config{Conn: conn, Identity: id, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cert, err := c.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetching a certificate for %s: %v", id, err)
	}
	return cert.TLS
}

// mtlsClient is an HTTP/1.1 client that dials with cert (none when nil) and verifies
// the server against ca's bundle and identity server.
func mtlsClient(t *testing.T, ca *xdstest.CA, cert *tls.Certificate, server identity.ID) *http.Client {
	t.Helper()
	getCert := func() (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	cfg, err := peertls.ClientConfig(peertls.Config{
		Certificate: getCert,
		Roots:       peertls.NewBundle(ca.CA.TrustBundle()).Pool,
		Peers:       []identity.ID{server},
		NextProtos:  []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:          nil,
		DialTLSContext: (&tls.Dialer{Config: cfg}).DialContext,
	}}
}

// load sends GETs through the client sidecar from workers goroutines until stop is
// called, which returns how many were sent and the failures.
func (m *tlsMesh) load(workers int) (stop func() (int64, []string)) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		sent   atomic.Int64
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.outbound+"/", nil)
				req.Host = "echo"
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				sent.Add(1)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%d %s", resp.StatusCode, body)
					}
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	return func() (int64, []string) {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return sent.Load(), failed
	}
}

// rawRequest writes a plaintext HTTP/1.1 request on a new connection to addr and
// returns what comes back (an error when the connection is refused or closed).
func rawRequest(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if len(b) == 0 {
		return "", fmt.Errorf("connection closed without an answer (%v)", err)
	}
	return string(b), nil
}

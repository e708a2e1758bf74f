package xdstest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/names"
)

// RootCA is the trust bundle Secret, as the control plane sends it.
func RootCA(pemRoots []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: names.RootCASecret,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pemRoots}},
		}},
	}
}

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

func tlsParams() *tlsv3.TlsParameters {
	return &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
	}
}

// uriSANs are URI matchers: exact for each id, or one prefix spiffe://<td>/ when none.
func uriSANs(td string, ids []string) []*tlsv3.SubjectAltNameMatcher {
	if len(ids) == 0 {
		return []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}}}}
	}
	var out []*tlsv3.SubjectAltNameMatcher
	for _, id := range ids {
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}})
	}
	return out
}

func meshContext(td string, ids, alpn []string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:                      tlsParams(),
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(names.WorkloadSecret)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: uriSANs(td, ids)},
			ValidationContextSdsSecretConfig: sds(names.RootCASecret),
		}},
		AlpnProtocols: alpn,
	}
}

// Mode is a PeerAuthentication mode, as the inbound listener shows it.
type Mode string

// The modes.
const (
	Strict     Mode = "STRICT"
	Permissive Mode = "PERMISSIVE"
	Disable    Mode = "DISABLE"
)

// InboundHTTPListener is an inbound listener with an inline route configuration, in
// the filter chains of mode (docs/xds.md, "Inbound listeners").
func InboundHTTPListener(name, addr string, mode Mode, td string, rc *routev3.RouteConfiguration) *listenerv3.Listener {
	plain := HCM(name, "", rc)
	plain.ForwardClientCertDetails = hcmv3.HttpConnectionManager_SANITIZE
	secure := proto.Clone(plain).(*hcmv3.HttpConnectionManager)
	secure.ForwardClientCertDetails = hcmv3.HttpConnectionManager_SANITIZE_SET
	secure.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Uri: true}
	return inbound(name, addr, mode, td, []string{"h2", "http/1.1"},
		filter("envoy.filters.network.http_connection_manager", plain),
		filter("envoy.filters.network.http_connection_manager", secure))
}

// InboundTCPListener is an inbound TCP proxy listener to cluster, in the filter
// chains of mode.
func InboundTCPListener(name, addr string, mode Mode, td, cluster string) *listenerv3.Listener {
	tp := &tcpv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}}
	f := filter("envoy.filters.network.tcp_proxy", tp)
	return inbound(name, addr, mode, td, nil, f, f)
}

func filter(name string, cfg proto.Message) *listenerv3.Filter {
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: MustAny(cfg)}}
}

func inbound(name, addr string, mode Mode, td string, alpn []string, plainF, tlsF *listenerv3.Filter) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name, Address: SocketAddress(addr), TrafficDirection: corev3.TrafficDirection_INBOUND}
	plain := &listenerv3.FilterChain{Name: "plaintext", Filters: []*listenerv3.Filter{plainF}}
	if mode == Disable {
		l.FilterChains = []*listenerv3.FilterChain{plain}
		return l
	}
	secure := &listenerv3.FilterChain{
		Name:             "tls",
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
			TypedConfig: MustAny(&tlsv3.DownstreamTlsContext{
				CommonTlsContext:                 meshContext(td, nil, alpn),
				RequireClientCertificate:         wrapperspb.Bool(true),
				SessionTicketKeysType:            &tlsv3.DownstreamTlsContext_DisableStatelessSessionResumption{DisableStatelessSessionResumption: true},
				DisableStatefulSessionResumption: true,
			}),
		}},
		Filters: []*listenerv3.Filter{tlsF},
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: MustAny(&tlsinspectorv3.TlsInspector{})}}}
	l.FilterChains = []*listenerv3.FilterChain{secure}
	if mode == Permissive {
		plain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
		l.FilterChains = append(l.FilterChains, plain)
	}
	return l
}

// MeshTLS makes c use the mesh's mutual TLS (ISTIO_MUTUAL) toward servers with one of
// the SPIFFE ids (any of trust domain td when none), with sni and alpn.
func MeshTLS(c *clusterv3.Cluster, td, sni string, alpn []string, ids ...string) *clusterv3.Cluster {
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: MustAny(&tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: meshContext(td, ids, alpn)}),
	}}
	return c
}

// CA is a real certificate authority (internal/ca) with its certificate service
// (casvc) and a join token, for sidecars under test.
type CA struct {
	CA        *ca.CA
	Token     string
	TokenFile string
	Service   *casvc.Service
}

// NewCA makes a CA whose workload certificates live ttl (the CA's default when zero).
func NewCA(t testing.TB, ttl time.Duration) *CA {
	t.Helper()
	dir := t.TempDir()
	authority, err := ca.New(ca.Config{DataDir: dir, CertTTL: ttl, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("creating CA: %v", err)
	}
	token, err := casvc.JoinToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := casvc.New(casvc.Config{Signer: authority, Authenticator: casvc.NewTokenAuthenticator(token, ""),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &CA{CA: authority, Token: token, TokenFile: filepath.Join(dir, casvc.JoinTokenFile), Service: svc}
}

// Register adds the certificate service to a gRPC server (Options.Register).
func (c *CA) Register(s grpc.ServiceRegistrar) { c.Service.Register(s) }

// RootCA is the CA's trust bundle as the Secret the control plane sends.
func (c *CA) RootCA() *tlsv3.Secret { return RootCA(c.CA.TrustBundlePEM()) }

// BundleFile writes the trust bundle to a file (a bootstrap's xdsCAFile) and returns
// its path.
func (c *CA) BundleFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("roots-%d.pem", len(c.CA.TrustBundle())))
	if err := os.WriteFile(path, c.CA.TrustBundlePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

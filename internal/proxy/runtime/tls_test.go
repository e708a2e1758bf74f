package runtime

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

func inboundRC() *routev3.RouteConfiguration {
	return xdstest.RouteConfig("inbound|80", xdstest.VirtualHost("inbound", []string{"*"}, "inbound|80||"))
}

func strictListener() *listenerv3.Listener {
	return xdstest.InboundHTTPListener("inbound|80", "127.0.0.1:15006", xdstest.Strict, "cluster.local", inboundRC())
}

// downstream returns the DownstreamTlsContext of l's first chain, to change it, and
// a function that puts it back.
func downstream(l *listenerv3.Listener) (*tlsv3.DownstreamTlsContext, func() *listenerv3.Listener) {
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := l.FilterChains[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		panic(err)
	}
	return ctx, func() *listenerv3.Listener {
		l.FilterChains[0].TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: xdstest.MustAny(ctx)}
		return l
	}
}

func meshCluster() *clusterv3.Cluster {
	return xdstest.MeshTLS(xdstest.EDSCluster("outbound|80||echo", false), "cluster.local", "outbound_.80_._.echo",
		[]string{"http/1.1"}, "spiffe://cluster.local/ns/default/sa/echo")
}

func upstream(c *clusterv3.Cluster) (*tlsv3.UpstreamTlsContext, func() *clusterv3.Cluster) {
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
		panic(err)
	}
	return ctx, func() *clusterv3.Cluster {
		c.TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: xdstest.MustAny(ctx)}
		return c
	}
}

func TestValidateTLS(t *testing.T) {
	root := testRootPEM(t, true)
	tests := []struct {
		name    string
		typeURL string
		res     proto.Message
		want    string // substring of the error; "" for valid
	}{
		{name: "strict", typeURL: ListenerType, res: strictListener()},
		{name: "permissive", typeURL: ListenerType, res: xdstest.InboundHTTPListener("inbound|80", "127.0.0.1:15006", xdstest.Permissive, "cluster.local", inboundRC())},
		{name: "disable", typeURL: ListenerType, res: xdstest.InboundHTTPListener("inbound|80", "127.0.0.1:15006", xdstest.Disable, "cluster.local", inboundRC())},
		{name: "tcp permissive", typeURL: ListenerType, res: xdstest.InboundTCPListener("inbound|9000", "127.0.0.1:15007", xdstest.Permissive, "cluster.local", "inbound|9000||")},
		{name: "mesh cluster", typeURL: ClusterType, res: meshCluster()},
		{name: "trust bundle", typeURL: SecretType, res: xdstest.RootCA(root)},
		{
			name: "unknown transport protocol", typeURL: ListenerType,
			res: func() proto.Message {
				l := strictListener()
				l.FilterChains[0].FilterChainMatch.TransportProtocol = "quic"
				return l
			}(),
			want: `filter_chains[0].filter_chain_match.transport_protocol: "quic" is not supported`,
		},
		{
			name: "two chains for the same connections", typeURL: ListenerType,
			res: func() proto.Message {
				l := strictListener()
				l.FilterChains = append(l.FilterChains, l.FilterChains[0])
				return l
			}(),
			want: `filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]`,
		},
		{
			name: "other listener filter", typeURL: ListenerType,
			res: func() proto.Message {
				l := strictListener()
				l.ListenerFilters[0].Name = "envoy.filters.listener.proxy_protocol"
				return l
			}(),
			want: `listener_filters[0].name: listener filter "envoy.filters.listener.proxy_protocol" is not supported`,
		},
		{
			name: "tls chain without transport socket", typeURL: ListenerType,
			res: func() proto.Message {
				l := strictListener()
				l.FilterChains[0].TransportSocket = nil
				return l
			}(),
			want: `filter_chains[0].transport_socket: is required on a chain matching "tls"`,
		},
		{
			name: "client certificate not required", typeURL: ListenerType,
			res: func() proto.Message {
				ctx, put := downstream(strictListener())
				ctx.RequireClientCertificate = wrapperspb.Bool(false)
				return put()
			}(),
			want: `transport_socket.typed_config.require_client_certificate: must be true`,
		},
		{
			name: "another certificate secret", typeURL: ListenerType,
			res: func() proto.Message {
				ctx, put := downstream(strictListener())
				ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].Name = "other"
				return put()
			}(),
			want: `common_tls_context.tls_certificate_sds_secret_configs[0].name: secret "other" is not available here (want "default")`,
		},
		{
			name: "another validation secret", typeURL: ListenerType,
			res: func() proto.Message {
				ctx, put := downstream(strictListener())
				ctx.CommonTlsContext.GetCombinedValidationContext().ValidationContextSdsSecretConfig.Name = "other"
				return put()
			}(),
			want: `validation_context_sds_secret_config.name: secret "other" is not available here (want "ROOTCA")`,
		},
		{
			name: "TLS 1.1", typeURL: ListenerType,
			res: func() proto.Message {
				ctx, put := downstream(strictListener())
				ctx.CommonTlsContext.TlsParams.TlsMinimumProtocolVersion = tlsv3.TlsParameters_TLSv1_1
				return put()
			}(),
			want: `tls_params.tls_minimum_protocol_version: TLSv1_1 is not supported (TLS 1.2 is the minimum)`,
		},
		{
			name: "cipher suites", typeURL: ListenerType,
			res: func() proto.Message {
				ctx, put := downstream(strictListener())
				ctx.CommonTlsContext.TlsParams.CipherSuites = []string{"AES128-SHA"}
				return put()
			}(),
			want: `common_tls_context.tls_params.cipher_suites: is not supported`,
		},
		{
			name: "forwarding client certificates", typeURL: ListenerType,
			res: func() proto.Message {
				l := strictListener()
				h := &hcmv3.HttpConnectionManager{}
				if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(h); err != nil {
					t.Fatal(err)
				}
				h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
				l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(h)}
				return l
			}(),
			want: `filter_chains[0].filters[0].typed_config.forward_client_cert_details: APPEND_FORWARD is not supported`,
		},
		{
			name: "DNS SAN in mesh TLS", typeURL: ClusterType,
			res: func() proto.Message {
				ctx, put := upstream(meshCluster())
				ctx.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext.MatchTypedSubjectAltNames[0].SanType = tlsv3.SubjectAltNameMatcher_DNS
				return put()
			}(),
			want: `match_typed_subject_alt_names[0].san_type: must be URI`,
		},
		{
			name: "renegotiation", typeURL: ClusterType,
			res: func() proto.Message {
				ctx, put := upstream(meshCluster())
				ctx.AllowRenegotiation = true
				return put()
			}(),
			want: `transport_socket.typed_config.allow_renegotiation: is not supported`,
		},
		{
			name: "other transport socket", typeURL: ClusterType,
			res: func() proto.Message {
				c := meshCluster()
				c.TransportSocket.Name = "envoy.transport_sockets.raw_buffer"
				return c
			}(),
			want: `transport_socket.name: transport socket "envoy.transport_sockets.raw_buffer" is not supported`,
		},
		{
			name: "secret named default", typeURL: SecretType,
			res: func() proto.Message {
				s := xdstest.RootCA(root)
				s.Name = "default"
				return s
			}(),
			want: `secret "default": name: the sidecar provides secret "default" itself`,
		},
		{name: "empty bundle", typeURL: SecretType, res: xdstest.RootCA([]byte("no pem here")), want: `holds no PEM certificate`},
		{name: "leaf in the bundle", typeURL: SecretType, res: xdstest.RootCA(testRootPEM(t, false)), want: `is not a CA certificate`},
		{
			name: "a key in the bundle", typeURL: SecretType,
			res:  xdstest.RootCA(append(append([]byte{}, root...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...)),
			want: `PEM block 2 is a "PRIVATE KEY"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.typeURL, one(tt.res))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBuildTLS(t *testing.T) {
	root := testRootPEM(t, true)
	res := Resources{
		Listeners: map[string]*listenerv3.Listener{
			"inbound|80": xdstest.InboundHTTPListener("inbound|80", "127.0.0.1:15006", xdstest.Permissive, "cluster.local", inboundRC()),
		},
		Clusters: map[string]*clusterv3.Cluster{
			"inbound|80||":      xdstest.StaticCluster("inbound|80||", false, "127.0.0.1:8080"),
			"outbound|80||echo": meshCluster(),
		},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"outbound|80||echo": xdstest.Assignment("outbound|80||echo", "127.0.0.1:1")},
	}
	if _, err := Build(res); !errors.Is(err, ErrUnresolved) || !strings.Contains(err.Error(), `secret "ROOTCA" not received`) {
		t.Fatalf("Build without ROOTCA = %v, want it unresolved", err)
	}
	res.Secrets = map[string]*tlsv3.Secret{"ROOTCA": xdstest.RootCA(root)}
	table, err := Build(res)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	l := table.Listeners["inbound|80"]
	type chain struct {
		Name, Proto string
		TLS         bool
		XFCC        XFCC
	}
	var got []chain
	for _, c := range l.Chains {
		got = append(got, chain{c.Name, c.TransportProtocol, c.TLS != nil, c.XFCC})
	}
	want := []chain{{"tls", "tls", true, XFCC{Set: true, URI: true}}, {"plaintext", "raw_buffer", false, XFCC{}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chains (-want +got):\n%s", diff)
	}
	if !l.Inspect || l.Chain(true).Name != "tls" || l.Chain(false).Name != "plaintext" {
		t.Errorf("listener inspect=%v, chain(tls)=%v, chain(plain)=%v", l.Inspect, l.Chain(true), l.Chain(false))
	}
	tc := table.Clusters["outbound|80||echo"].TLS
	wantTLS := &UpstreamTLS{SNI: "outbound_.80_._.echo", ALPN: []string{"http/1.1"}, Versions: TLSVersions{Min: 0x0303, Max: 0x0304},
		SANs:       []SANMatcher{{Type: SANURI, Value: "spiffe://cluster.local/ns/default/sa/echo"}},
		CertSecret: "default", RootSecret: "ROOTCA", Verify: true, Key: tc.Key}
	if diff := cmp.Diff(wantTLS, tc); diff != "" {
		t.Errorf("cluster TLS (-want +got):\n%s", diff)
	}
}

// testRootPEM is a self-signed certificate in PEM: a CA, or a leaf.
func testRootPEM(t *testing.T, isCA bool) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

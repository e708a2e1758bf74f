package xdsgen

import (
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/names"
)

// Mutual TLS (docs/xds.md, "Security"): inbound listeners get a `tls` filter chain
// and/or a `plaintext` one by the port's PeerAuthentication mode; outbound clusters
// get an UpstreamTlsContext by their model.ClusterTLS. Certificates are never sent:
// the sidecar provides its own as the SDS secret `default`; the trust bundle comes as
// the SDS secret `ROOTCA` (RootCASecret).

// Filter chain names and transport protocols of inbound listeners.
const (
	TLSChain       = "tls"
	PlaintextChain = "plaintext"
	// TransportTLS and TransportRaw are the tls_inspector's transport protocols.
	TransportTLS = "tls"
	TransportRaw = "raw_buffer"
)

// RootCASecret is the SDS secret that carries the trust bundle (PEM, every root).
func RootCASecret(bundlePEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: names.RootCASecret,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: bundlePEM}},
		}},
	}
}

// sds refers to a secret delivered over ADS (or, for `default`, by the sidecar).
func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

func tlsParams() *tlsv3.TlsParameters {
	return &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
	}
}

// spiffeMatchers lists URI SAN matchers: one exact per ID, or, with none, a prefix
// that admits any identity of the trust domain.
func spiffeMatchers(ids []string, trustDomain string) []*tlsv3.SubjectAltNameMatcher {
	if len(ids) == 0 {
		return []*tlsv3.SubjectAltNameMatcher{{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + trustDomain + "/"}},
		}}
	}
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(ids))
	for _, id := range ids {
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}},
		})
	}
	return out
}

// meshValidation verifies the peer against ROOTCA and the SAN matchers.
func meshValidation(matchers []*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext_CombinedValidationContext {
	return &tlsv3.CommonTlsContext_CombinedValidationContext{
		CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: matchers},
			ValidationContextSdsSecretConfig: sds(names.RootCASecret),
		},
	}
}

// tlsTransport wraps a TLS context in the transport socket envoy.transport_sockets.tls.
func tlsTransport(anyCtx *corev3.TransportSocket_TypedConfig) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: wellknown.TransportSocketTLS, ConfigType: anyCtx}
}

// downstreamTLS is the server side of the mesh's mutual TLS on an inbound listener.
func downstreamTLS(protocol v1alpha1.Protocol, trustDomain string) *corev3.TransportSocket {
	common := &tlsv3.CommonTlsContext{
		TlsParams:                      tlsParams(),
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(names.WorkloadSecret)},
		ValidationContextType:          meshValidation(spiffeMatchers(nil, trustDomain)),
	}
	if model.IsHTTP(protocol) {
		common.AlpnProtocols = []string{"h2", "http/1.1"}
	}
	return tlsTransport(&corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:                 common,
		RequireClientCertificate:         wrapperspb.Bool(true),
		SessionTicketKeysType:            &tlsv3.DownstreamTlsContext_DisableStatelessSessionResumption{DisableStatelessSessionResumption: true},
		DisableStatefulSessionResumption: true,
	})})
}

// upstreamALPN is what a client sidecar offers: the port's protocol.
func upstreamALPN(protocol v1alpha1.Protocol) []string {
	switch {
	case protocol == v1alpha1.ProtocolHTTP2 || protocol == v1alpha1.ProtocolGRPC:
		return []string{"h2"}
	case model.IsHTTP(protocol):
		return []string{"http/1.1"}
	}
	return nil
}

// upstreamTLS is the client side of a cluster's TLS; nil for plaintext.
func upstreamTLS(info model.ClusterInfo) *corev3.TransportSocket {
	t := info.TLS
	if t == nil {
		return nil
	}
	common := &tlsv3.CommonTlsContext{TlsParams: tlsParams(), AlpnProtocols: upstreamALPN(info.Port.Protocol)}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: common}
	switch t.Mode {
	case model.TLSIstioMutual:
		ctx.Sni = names.UpstreamSNI(info.Ref.Service, info.Ref.Port, info.Ref.Subset)
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sds(names.WorkloadSecret)}
		common.ValidationContextType = meshValidation(spiffeMatchers(t.Identities, t.TrustDomain))
	case model.TLSSimple, model.TLSMutual:
		s := t.Settings
		ctx.Sni = s.SNI
		if ctx.Sni == "" {
			ctx.Sni = info.Service.FQDN
		}
		if t.Mode == model.TLSMutual {
			common.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: fileSource(s.ClientCertificate),
				PrivateKey:       fileSource(s.PrivateKey),
			}}
		}
		if !s.InsecureSkipVerify {
			vc := &tlsv3.CertificateValidationContext{}
			if s.CACertificates != "" {
				vc.TrustedCa = fileSource(s.CACertificates)
			} else {
				vc.SystemRootCerts = &tlsv3.CertificateValidationContext_SystemRootCerts{}
			}
			for _, san := range slices.Sorted(slices.Values(s.SubjectAltNames)) {
				vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
					SanType: tlsv3.SubjectAltNameMatcher_DNS,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}},
				})
			}
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	default:
		return nil
	}
	return tlsTransport(&corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)})
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// tlsInspector is the listener filter that tells TLS from plaintext.
func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       wellknown.TlsInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

// inboundListener is the listener of a workload port in the given mode. filter makes
// the chain's network filters; over TLS, an HTTP connection manager sets XFCC from the
// peer's certificate, and in plaintext it strips it.
func inboundListener(name string, addr *corev3.Address, mode model.MTLSMode, protocol v1alpha1.Protocol,
	trustDomain string, filter func(xfcc hcmv3.HttpConnectionManager_ForwardClientCertDetails) []*listenerv3.Filter) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name, Address: addr, TrafficDirection: corev3.TrafficDirection_INBOUND}
	tlsChain := &listenerv3.FilterChain{
		Name:             TLSChain,
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: TransportTLS},
		TransportSocket:  downstreamTLS(protocol, trustDomain),
		Filters:          filter(hcmv3.HttpConnectionManager_SANITIZE_SET),
	}
	plain := &listenerv3.FilterChain{
		Name:    PlaintextChain,
		Filters: filter(hcmv3.HttpConnectionManager_SANITIZE),
	}
	switch mode {
	case model.MTLSDisable:
		l.FilterChains = []*listenerv3.FilterChain{plain}
	case model.MTLSStrict:
		l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		l.FilterChains = []*listenerv3.FilterChain{tlsChain}
	default:
		plain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: TransportRaw}
		l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		l.FilterChains = []*listenerv3.FilterChain{tlsChain, plain}
	}
	return l
}

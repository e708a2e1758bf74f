package runtime

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/names"
)

// Names of the TLS extensions the sidecar implements.
const (
	TLSTransportSocket = "envoy.transport_sockets.tls"
	TLSInspectorFilter = "envoy.filters.listener.tls_inspector"
)

// Transport protocols a filter chain can match, as the TLS inspector names them.
const (
	TransportTLS = "tls"
	TransportRaw = "raw_buffer"
)

// SANType is the kind of subject alternative name a SANMatcher looks at.
type SANType int

// The SAN types the sidecar matches.
const (
	SANURI SANType = iota
	SANDNS
)

// SANMatcher matches one subject alternative name of a peer's certificate:
// exactly, or by prefix when Prefix is set.
type SANMatcher struct {
	Type   SANType
	Value  string
	Prefix bool
}

// Matches reports whether the name v satisfies m.
func (m SANMatcher) Matches(v string) bool {
	if m.Prefix {
		return strings.HasPrefix(v, m.Value)
	}
	return v == m.Value
}

// TLSVersions bound the TLS versions of a context (tls.VersionTLS12, ...).
type TLSVersions struct{ Min, Max uint16 }

// DownstreamTLS is how a filter chain terminates mutual TLS: the sidecar presents
// its own certificate (CertSecret, "default") and verifies the client's against the
// trust bundle (RootSecret, "ROOTCA") and the SAN matchers.
type DownstreamTLS struct {
	CertSecret, RootSecret string
	// SANs are the client identities accepted (any one); none: any the bundle vouches for.
	SANs     []SANMatcher
	ALPN     []string
	Versions TLSVersions
	// Config is attached by the sidecar before the table is published (the
	// certificate and bundle getters live outside the runtime); the runtime never
	// reads it.
	Config *tls.Config
	// LocalIdentity is this sidecar's SPIFFE ID (XFCC "By"), attached with Config.
	LocalIdentity string
}

// UpstreamTLS is how a cluster's connections are secured. Mesh mode (CertSecret and
// RootSecret set) presents the sidecar's certificate and checks the server's SPIFFE
// ID; file mode (SIMPLE, MUTUAL) uses the files named and verifies the server the
// WebPKI way.
type UpstreamTLS struct {
	SNI      string
	ALPN     []string
	Versions TLSVersions
	// SANs: the server must carry one of them (mesh mode: URI SANs; file mode: DNS or
	// URI SANs; none: any identity in mesh mode, SNI in file mode).
	SANs []SANMatcher

	CertSecret, RootSecret string

	// CertFile and KeyFile: the client certificate (MUTUAL). CAFile: the roots;
	// SystemRoots: the system's. Verify is false when the context has no validation
	// context at all (insecureSkipVerify).
	CertFile, KeyFile string
	CAFile            string
	SystemRoots       bool
	Verify            bool

	// Key identifies the settings: connection pools are shared only between clusters
	// whose Key is equal.
	Key string
	// Config is attached by the sidecar before the table is published; the runtime
	// never reads it.
	Config *tls.Config
}

// Mesh reports whether u is the mesh's mutual TLS (SDS secrets).
func (u *UpstreamTLS) Mesh() bool { return u.CertSecret != "" }

// XFCC is what a chain's HTTP connection manager does with x-forwarded-client-cert:
// an incoming header is always removed (SANITIZE, Envoy's default); with Set
// (SANITIZE_SET) a TLS chain sets By, Hash and, with URI, URI of the verified peer.
type XFCC struct {
	Set bool
	URI bool
}

// commonTLS is what a CommonTlsContext says.
type commonTLS struct {
	certSecret, rootSecret string
	certFile, keyFile      string
	caFile                 string
	systemRoots            bool
	validation             bool
	sans                   []SANMatcher
	alpn                   []string
	versions               TLSVersions
}

var sdsSecretFields = merge(fields("name"), configSourceFields.withPrefix("sds_config"))

var sanMatcherFields = fields("san_type", "matcher.exact", "matcher.prefix")

var commonTLSFields = merge(
	fields(
		"tls_params.tls_minimum_protocol_version",
		"tls_params.tls_maximum_protocol_version",
		"alpn_protocols",
		"tls_certificates.certificate_chain.filename",
		"tls_certificates.private_key.filename",
		"validation_context.trusted_ca.filename",
		"validation_context.system_root_certs",
	),
	sdsSecretFields.withPrefix("tls_certificate_sds_secret_configs"),
	sanMatcherFields.withPrefix("validation_context.match_typed_subject_alt_names"),
	sanMatcherFields.withPrefix("combined_validation_context.default_validation_context.match_typed_subject_alt_names"),
	sdsSecretFields.withPrefix("combined_validation_context.validation_context_sds_secret_config"),
	sdsSecretFields.withPrefix("validation_context_sds_secret_config"),
)

var downstreamTLSFields = merge(
	fields("require_client_certificate", "disable_stateless_session_resumption", "disable_stateful_session_resumption"),
	commonTLSFields.withPrefix("common_tls_context"),
)

var upstreamTLSFields = merge(fields("sni"), commonTLSFields.withPrefix("common_tls_context"))

var transportSocketFields = fields("name", "typed_config")

// parseDownstreamTLS reads a filter chain's transport_socket.
func parseDownstreamTLS(ts *corev3.TransportSocket) (*DownstreamTLS, error) {
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := unpackTransportSocket(ts, ctx, downstreamTLSFields); err != nil {
		return nil, err
	}
	const at = "typed_config.common_tls_context"
	c, err := parseCommonTLS(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, prefixed(at, err)
	}
	switch {
	case c.certFile != "" || c.caFile != "" || c.systemRoots:
		return nil, fieldErrorf(at, "certificates and roots from files are not supported on listeners (use SDS %q and %q)", names.WorkloadSecret, names.RootCASecret)
	case c.certSecret == "":
		return nil, fieldErrorf(at+".tls_certificate_sds_secret_configs", "is required: the sidecar presents its own certificate, %q", names.WorkloadSecret)
	case c.rootSecret == "":
		return nil, fieldErrorf(at+".combined_validation_context", "is required: clients are verified against SDS %q", names.RootCASecret)
	case !ctx.GetRequireClientCertificate().GetValue():
		return nil, fieldErrorf("typed_config.require_client_certificate", "must be true: inbound TLS is mutual")
	}
	for i, m := range c.sans {
		if m.Type != SANURI {
			return nil, fieldErrorf(fmt.Sprintf("%s.combined_validation_context.default_validation_context.match_typed_subject_alt_names[%d].san_type", at, i),
				"must be URI (peers are identified by SPIFFE IDs)")
		}
	}
	d := &DownstreamTLS{CertSecret: c.certSecret, RootSecret: c.rootSecret, SANs: c.sans, ALPN: c.alpn, Versions: c.versions}
	return pgvOr(ctx, d)
}

// parseUpstreamTLS reads a cluster's transport_socket.
func parseUpstreamTLS(ts *corev3.TransportSocket) (*UpstreamTLS, error) {
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := unpackTransportSocket(ts, ctx, upstreamTLSFields); err != nil {
		return nil, err
	}
	const at = "typed_config.common_tls_context"
	c, err := parseCommonTLS(ctx.GetCommonTlsContext())
	if err != nil {
		return nil, prefixed(at, err)
	}
	u := &UpstreamTLS{
		SNI: ctx.GetSni(), ALPN: c.alpn, Versions: c.versions, SANs: c.sans,
		CertSecret: c.certSecret, RootSecret: c.rootSecret,
		CertFile: c.certFile, KeyFile: c.keyFile, CAFile: c.caFile, SystemRoots: c.systemRoots,
		Verify: c.validation,
	}
	if c.certSecret != "" || c.rootSecret != "" {
		switch {
		case c.certSecret == "":
			return nil, fieldErrorf(at+".tls_certificate_sds_secret_configs", "is required with an SDS validation context (mesh mutual TLS presents %q)", names.WorkloadSecret)
		case c.rootSecret == "":
			return nil, fieldErrorf(at+".combined_validation_context", "is required with an SDS certificate (servers are verified against %q)", names.RootCASecret)
		case c.certFile != "" || c.caFile != "" || c.systemRoots:
			return nil, fieldErrorf(at, "mixes SDS secrets and files")
		}
		for i, m := range c.sans {
			if m.Type != SANURI {
				return nil, fieldErrorf(fmt.Sprintf("%s.combined_validation_context.default_validation_context.match_typed_subject_alt_names[%d].san_type", at, i),
					"must be URI (mesh servers are identified by SPIFFE IDs)")
			}
		}
	}
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(ctx)
	if err != nil {
		return nil, fieldErrorf("typed_config", "encoding: %v", err)
	}
	u.Key = string(key)
	return pgvOr(ctx, u)
}

func unpackTransportSocket(ts *corev3.TransportSocket, ctx proto.Message, allowed fieldSet) error {
	if err := checkFields(ts.ProtoReflect(), transportSocketFields); err != nil {
		return err
	}
	if ts.GetName() != TLSTransportSocket {
		return fieldErrorf("name", "transport socket %q is not supported (want %s)", ts.GetName(), TLSTransportSocket)
	}
	if err := unpack(ts.GetTypedConfig(), ctx); err != nil {
		return prefixed("typed_config", err)
	}
	if err := checkFields(ctx.ProtoReflect(), allowed); err != nil {
		return prefixed("typed_config", err)
	}
	return nil
}

func parseCommonTLS(c *tlsv3.CommonTlsContext) (*commonTLS, error) {
	out := &commonTLS{alpn: c.GetAlpnProtocols()}
	var err error
	if out.versions, err = parseTLSParams(c.GetTlsParams()); err != nil {
		return nil, prefixed("tls_params", err)
	}
	sds := c.GetTlsCertificateSdsSecretConfigs()
	if len(sds) > 1 {
		return nil, fieldErrorf("tls_certificate_sds_secret_configs", "must hold at most one secret, not %d", len(sds))
	}
	if len(sds) == 1 {
		if out.certSecret, err = sdsSecret(sds[0], names.WorkloadSecret); err != nil {
			return nil, prefixed("tls_certificate_sds_secret_configs[0]", err)
		}
	}
	files := c.GetTlsCertificates()
	switch {
	case len(files) > 1:
		return nil, fieldErrorf("tls_certificates", "must hold at most one certificate, not %d", len(files))
	case len(files) == 1 && len(sds) == 1:
		return nil, fieldErrorf("tls_certificates", "cannot be used with tls_certificate_sds_secret_configs")
	case len(files) == 1:
		out.certFile = files[0].GetCertificateChain().GetFilename()
		out.keyFile = files[0].GetPrivateKey().GetFilename()
		if out.certFile == "" || out.keyFile == "" {
			return nil, fieldErrorf("tls_certificates[0]", "certificate_chain.filename and private_key.filename are required")
		}
	}
	switch v := c.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContext:
		out.validation = true
		vc := v.ValidationContext
		out.caFile = vc.GetTrustedCa().GetFilename()
		out.systemRoots = vc.GetSystemRootCerts() != nil
		if out.caFile != "" && out.systemRoots {
			return nil, fieldErrorf("validation_context", "one of trusted_ca and system_root_certs, not both")
		}
		if out.caFile == "" && !out.systemRoots {
			return nil, fieldErrorf("validation_context", "one of trusted_ca.filename or system_root_certs is required")
		}
		if out.sans, err = parseSANMatchers(vc.GetMatchTypedSubjectAltNames()); err != nil {
			return nil, prefixed("validation_context", err)
		}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		out.validation = true
		if out.rootSecret, err = sdsSecret(v.ValidationContextSdsSecretConfig, names.RootCASecret); err != nil {
			return nil, prefixed("validation_context_sds_secret_config", err)
		}
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		out.validation = true
		cv := v.CombinedValidationContext
		if out.rootSecret, err = sdsSecret(cv.GetValidationContextSdsSecretConfig(), names.RootCASecret); err != nil {
			return nil, prefixed("combined_validation_context.validation_context_sds_secret_config", err)
		}
		if out.sans, err = parseSANMatchers(cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()); err != nil {
			return nil, prefixed("combined_validation_context.default_validation_context", err)
		}
	default:
		return nil, fieldErrorf("validation_context_type", "%T is not supported", v)
	}
	return out, nil
}

// sdsSecret checks a reference to a secret over ADS; want is the only name the
// sidecar can resolve there.
func sdsSecret(s *tlsv3.SdsSecretConfig, want string) (string, error) {
	if s == nil {
		return "", fieldErrorf("", "is required")
	}
	if err := checkADS(s.GetSdsConfig()); err != nil {
		return "", prefixed("sds_config", err)
	}
	if s.GetName() != want {
		return "", fieldErrorf("name", "secret %q is not available here (want %q)", s.GetName(), want)
	}
	return s.GetName(), nil
}

func parseSANMatchers(ms []*tlsv3.SubjectAltNameMatcher) ([]SANMatcher, error) {
	var out []SANMatcher
	for i, m := range ms {
		at := fmt.Sprintf("match_typed_subject_alt_names[%d]", i)
		var sm SANMatcher
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_URI:
			sm.Type = SANURI
		case tlsv3.SubjectAltNameMatcher_DNS:
			sm.Type = SANDNS
		default:
			return nil, fieldErrorf(at+".san_type", "%s is not supported (want URI or DNS)", m.GetSanType())
		}
		switch {
		case m.GetMatcher().GetExact() != "":
			sm.Value = m.GetMatcher().GetExact()
		case m.GetMatcher().GetPrefix() != "":
			sm.Value, sm.Prefix = m.GetMatcher().GetPrefix(), true
		default:
			return nil, fieldErrorf(at+".matcher", "one of exact or prefix is required")
		}
		out = append(out, sm)
	}
	return out, nil
}

func parseTLSParams(p *tlsv3.TlsParameters) (TLSVersions, error) {
	v := TLSVersions{Min: tls.VersionTLS12, Max: tls.VersionTLS13}
	switch p.GetTlsMinimumProtocolVersion() {
	case tlsv3.TlsParameters_TLS_AUTO, tlsv3.TlsParameters_TLSv1_2:
	case tlsv3.TlsParameters_TLSv1_3:
		v.Min = tls.VersionTLS13
	default:
		return v, fieldErrorf("tls_minimum_protocol_version", "%s is not supported (TLS 1.2 is the minimum)", p.GetTlsMinimumProtocolVersion())
	}
	switch p.GetTlsMaximumProtocolVersion() {
	case tlsv3.TlsParameters_TLS_AUTO, tlsv3.TlsParameters_TLSv1_3:
	case tlsv3.TlsParameters_TLSv1_2:
		v.Max = tls.VersionTLS12
	default:
		return v, fieldErrorf("tls_maximum_protocol_version", "%s is not supported (TLS 1.2 is the minimum)", p.GetTlsMaximumProtocolVersion())
	}
	if v.Min > v.Max {
		return v, fieldErrorf("tls_maximum_protocol_version", "is below tls_minimum_protocol_version")
	}
	return v, nil
}

var secretFields = fields("name", "validation_context.trusted_ca.inline_bytes")

// parseSecret checks a Secret received over SDS: a trust bundle, inline PEM.
func parseSecret(s *tlsv3.Secret) ([]*x509.Certificate, error) {
	if s.GetName() == names.WorkloadSecret {
		return nil, fieldErrorf("name", "the sidecar provides secret %q itself; it must not be sent", names.WorkloadSecret)
	}
	if err := checkFields(s.ProtoReflect(), secretFields); err != nil {
		return nil, err
	}
	data := s.GetValidationContext().GetTrustedCa().GetInlineBytes()
	if len(data) == 0 {
		return nil, fieldErrorf("validation_context.trusted_ca.inline_bytes", "is required (PEM certificates)")
	}
	var roots []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fieldErrorf("validation_context.trusted_ca.inline_bytes", "PEM block %d is a %q, not a CERTIFICATE", len(roots)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fieldErrorf("validation_context.trusted_ca.inline_bytes", "certificate %d: %v", len(roots)+1, err)
		}
		if !c.IsCA {
			return nil, fieldErrorf("validation_context.trusted_ca.inline_bytes", "certificate %d (%s) is not a CA certificate", len(roots)+1, c.Subject)
		}
		roots = append(roots, c)
	}
	if len(roots) == 0 {
		return nil, fieldErrorf("validation_context.trusted_ca.inline_bytes", "holds no PEM certificate")
	}
	return pgvOr(s, roots)
}

// TrustBundle returns the roots of a validated Secret.
func TrustBundle(s *tlsv3.Secret) ([]*x509.Certificate, error) {
	roots, err := parseSecret(s)
	if err != nil {
		return nil, asError(SecretType, s.GetName(), err)
	}
	return roots, nil
}

package runtime

import (
	"errors"
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"trellis.dev/trellis/internal/proxy/authz"
	"trellis.dev/trellis/internal/proxy/extauthz"
	"trellis.dev/trellis/internal/proxy/jwt"
)

// Authorization and request authentication (docs/xds.md, "Authorization and request
// authentication"): the HTTP connection manager's path normalization, the jwt_authn,
// rbac and ext_authz HTTP filters, and the rbac and ext_authz network filters.

// Names of the authorization filters.
const (
	JWTAuthnFilter        = "envoy.filters.http.jwt_authn"
	HTTPRBACFilter        = "envoy.filters.http.rbac"
	HTTPExtAuthzFilter    = "envoy.filters.http.ext_authz"
	NetworkRBACFilter     = "envoy.filters.network.rbac"
	NetworkExtAuthzFilter = "envoy.filters.network.ext_authz"
)

// AuthzFilter is one authorization or authentication filter of a chain, run in
// order before routing: exactly one field is set.
type AuthzFilter struct {
	JWT      *jwt.Filter
	RBAC     *authz.Filter
	ExtAuthz *ExtAuthz
}

// ExtAuthz is an ext_authz filter with its authorizer's cluster, resolved by Build.
type ExtAuthz struct {
	extauthz.Settings
	Cluster *Cluster
}

var jwtHeaderFields = fields("name", "value_prefix")

var jwtProviderFields = merge(
	fields(
		"issuer",
		"audiences",
		"local_jwks.inline_string",
		"from_params",
		"forward",
		"forward_payload_header",
		"claim_to_headers.header_name",
		"claim_to_headers.claim_name",
		"payload_in_metadata",
	),
	jwtHeaderFields.withPrefix("from_headers"),
)

var jwtRequirementFields = fields("provider_name", "allow_missing")

var jwtAuthnFields = merge(
	jwtProviderFields.withPrefix("providers"),
	fields("rules.match.prefix"),
	jwtRequirementFields.withPrefix("rules.requires"),
	jwtRequirementFields.withPrefix("rules.requires.requires_any.requirements"),
)

var metadataMatcherFields = merge(
	fields("filter", "path.key", "value.present_match"),
	stringMatcherFields.withPrefix("value.string_match"),
)

var extAuthzFields = merge(
	fields(
		"grpc_service.envoy_grpc.cluster_name",
		"grpc_service.timeout",
		"transport_api_version",
		"failure_mode_allow",
	),
	metadataMatcherFields.withPrefix("filter_enabled_metadata"),
)

var netExtAuthzFields = merge(extAuthzFields, fields("stat_prefix"))

// isAuthzHTTPFilter reports the HTTP filters parsed here rather than by
// checkHTTPFilters.
func isAuthzHTTPFilter(name string) bool {
	return name == JWTAuthnFilter || name == HTTPRBACFilter || name == HTTPExtAuthzFilter
}

// parseNormalization reads the HTTP connection manager's path normalization.
// normalize_path cannot be turned off: absent means on, as the control plane
// always sends it (the sidecar never routes or authorizes an unnormalized path).
func parseNormalization(h *hcmv3.HttpConnectionManager) (authz.PathOptions, error) {
	if np := h.GetNormalizePath(); np != nil && !np.GetValue() {
		return authz.PathOptions{}, fieldErrorf("normalize_path", "false is not supported: the sidecar always normalizes paths")
	}
	opts := authz.PathOptions{MergeSlashes: h.GetMergeSlashes()}
	switch a := h.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
		opts.EscapedSlashes = authz.KeepEscapedSlashes
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		opts.EscapedSlashes = authz.RejectEscapedSlashes
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		opts.EscapedSlashes = authz.UnescapeSlashes
	default:
		return opts, fieldErrorf("path_with_escaped_slashes_action", "%s is not supported (want KEEP_UNCHANGED, REJECT_REQUEST or UNESCAPE_AND_FORWARD)", a)
	}
	return opts, nil
}

// parseHTTPAuthz compiles the authorization filters of an HTTP connection manager.
// They must come before every other filter, jwt_authn first; at most one ext_authz.
func parseHTTPAuthz(filters []*hcmv3.HttpFilter) ([]AuthzFilter, error) {
	var out []AuthzFilter
	others, extAuthz := false, false
	for i, f := range filters {
		at := fmt.Sprintf("http_filters[%d]", i)
		name := f.GetName()
		if !isAuthzHTTPFilter(name) {
			others = true
			continue
		}
		if others {
			return nil, fieldErrorf(at+".name", "%s must come before the other HTTP filters", name)
		}
		var af AuthzFilter
		var err error
		switch name {
		case JWTAuthnFilter:
			if len(out) > 0 {
				return nil, fieldErrorf(at+".name", "%s must be the first HTTP filter", name)
			}
			af.JWT, err = parseJWTAuthn(f)
		case HTTPRBACFilter:
			cfg := &httprbacv3.RBAC{}
			if err = unpack(f.GetTypedConfig(), cfg); err == nil {
				af.RBAC, err = authz.CompileHTTP(cfg)
				err = fromAuthz(err)
			}
		case HTTPExtAuthzFilter:
			if extAuthz {
				return nil, fieldErrorf(at+".name", "only one %s filter is supported", name)
			}
			extAuthz = true
			cfg := &extauthzv3.ExtAuthz{}
			if err = unpack(f.GetTypedConfig(), cfg); err == nil {
				if err = checkFields(cfg.ProtoReflect(), extAuthzFields); err == nil {
					af.ExtAuthz, err = compileExtAuthz(extauthz.CompileHTTP(cfg))
				}
			}
		}
		if err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		out = append(out, af)
	}
	return out, nil
}

func compileExtAuthz(s *extauthz.Settings, err error) (*ExtAuthz, error) {
	if err != nil {
		return nil, fieldErrorf("", "%v", err)
	}
	return &ExtAuthz{Settings: *s}, nil
}

// fromAuthz turns the policy compiler's error into a fieldError.
func fromAuthz(err error) error {
	var fe *authz.FieldError
	if errors.As(err, &fe) {
		return fieldErrorf(fe.Field, "%s", fe.Msg)
	}
	return err
}

func parseJWTAuthn(f *hcmv3.HttpFilter) (*jwt.Filter, error) {
	cfg := &jwtv3.JwtAuthentication{}
	if err := unpack(f.GetTypedConfig(), cfg); err != nil {
		return nil, err
	}
	if err := checkFields(cfg.ProtoReflect(), jwtAuthnFields); err != nil {
		return nil, err
	}
	var c jwt.Config
	for _, name := range sortedKeys(cfg.GetProviders()) {
		p := cfg.GetProviders()[name]
		pc := jwt.Provider{
			Name:                 name,
			Issuer:               p.GetIssuer(),
			Audiences:            p.GetAudiences(),
			JWKS:                 p.GetLocalJwks().GetInlineString(),
			FromParams:           p.GetFromParams(),
			Forward:              p.GetForward(),
			ForwardPayloadHeader: p.GetForwardPayloadHeader(),
			PayloadInMetadata:    p.GetPayloadInMetadata(),
		}
		if p.GetLocalJwks() == nil {
			return nil, fieldErrorf(fmt.Sprintf("providers[%q].local_jwks", name), "is required (remote_jwks is not supported)")
		}
		for _, h := range p.GetFromHeaders() {
			pc.FromHeaders = append(pc.FromHeaders, jwt.HeaderLocation{Name: h.GetName(), Prefix: h.GetValuePrefix()})
		}
		for _, ch := range p.GetClaimToHeaders() {
			pc.ClaimToHeaders = append(pc.ClaimToHeaders, jwt.ClaimHeader{Header: ch.GetHeaderName(), Claim: ch.GetClaimName()})
		}
		c.Providers = append(c.Providers, pc)
	}
	for i, r := range cfg.GetRules() {
		at := fmt.Sprintf("rules[%d]", i)
		pfx, ok := r.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Prefix)
		if !ok {
			return nil, fieldErrorf(at+".match", "a prefix is required")
		}
		rule := jwt.Rule{Prefix: pfx.Prefix}
		req := r.GetRequires()
		if req == nil {
			c.Rules = append(c.Rules, rule)
			continue
		}
		subs := []*jwtv3.JwtRequirement{req}
		if anyOf := req.GetRequiresAny(); anyOf != nil {
			subs = anyOf.GetRequirements()
		}
		for j, sub := range subs {
			switch {
			case sub.GetProviderName() != "":
				rule.Requirement.Providers = append(rule.Requirement.Providers, sub.GetProviderName())
			case sub.GetAllowMissing() != nil:
				rule.Requirement.AllowMissing = true
			default:
				return nil, fieldErrorf(fmt.Sprintf("%s.requires.requires_any.requirements[%d]", at, j), "provider_name or allow_missing is required")
			}
		}
		c.Rules = append(c.Rules, rule)
	}
	jf, err := jwt.New(c)
	if err != nil {
		return nil, fieldErrorf("", "%v", err)
	}
	return jf, nil
}

// parseNetworkAuthz compiles the authorization network filters in front of a
// chain's last filter: rbac and ext_authz (at most one).
func parseNetworkAuthz(filters []*listenerv3.Filter) ([]AuthzFilter, error) {
	var out []AuthzFilter
	extAuthz := false
	for i, f := range filters {
		at := fmt.Sprintf("filters[%d]", i)
		var af AuthzFilter
		var err error
		switch f.GetName() {
		case NetworkRBACFilter:
			cfg := &netrbacv3.RBAC{}
			if err = unpack(f.GetTypedConfig(), cfg); err == nil {
				af.RBAC, err = authz.CompileNetwork(cfg)
				err = fromAuthz(err)
			}
		case NetworkExtAuthzFilter:
			if extAuthz {
				return nil, fieldErrorf(at+".name", "only one %s filter is supported", f.GetName())
			}
			extAuthz = true
			cfg := &netextauthzv3.ExtAuthz{}
			if err = unpack(f.GetTypedConfig(), cfg); err == nil {
				if err = checkFields(cfg.ProtoReflect(), netExtAuthzFields); err == nil {
					af.ExtAuthz, err = compileExtAuthz(extauthz.CompileNetwork(cfg))
				}
			}
		default:
			return nil, fieldErrorf(at+".name", "filter %q is not supported before the last filter (want %s or %s)",
				f.GetName(), NetworkRBACFilter, NetworkExtAuthzFilter)
		}
		if err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		out = append(out, af)
	}
	return out, nil
}

// resolveAuthz links the ext_authz filters to their clusters, appending what is
// missing.
func resolveAuthz(fs []AuthzFilter, listener string, clusters map[string]*Cluster, missing *[]string) {
	for _, f := range fs {
		if f.ExtAuthz == nil {
			continue
		}
		if f.ExtAuthz.Cluster = clusters[f.ExtAuthz.Settings.Cluster]; f.ExtAuthz.Cluster == nil {
			*missing = append(*missing, fmt.Sprintf("listener %q: ext_authz cluster %q not received", listener, f.ExtAuthz.Settings.Cluster))
		}
	}
}

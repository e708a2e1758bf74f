package xdsgen

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/model"
)

// Filter names and the dynamic metadata that ties a CUSTOM policy's rules to the
// ext_authz filter (docs/xds.md, "Authorization and request authentication").
const (
	HTTPRBACFilter        = "envoy.filters.http.rbac"
	HTTPExtAuthzFilter    = "envoy.filters.http.ext_authz"
	NetworkRBACFilter     = "envoy.filters.network.rbac"
	NetworkExtAuthzFilter = "envoy.filters.network.ext_authz"
	// ExtAuthzStatPrefix prefixes the shadow RBAC's metadata keys and policy names.
	ExtAuthzStatPrefix   = "trellis_ext_authz_"
	ExtAuthzPolicyPrefix = "trellis-ext-authz-"
	// ExtAuthzClusterPrefix names an external authorizer's cluster: extauthz|<name>.
	ExtAuthzClusterPrefix = "extauthz|"
	// DeniedBody is the body of a request refused by authorization.
	DeniedBody = "RBAC: access denied"
)

// portAuthz is what applies to one inbound port, grouped by action.
type portAuthz struct {
	jwt                        []*model.JWTPolicy
	custom, deny, allow, audit []*model.AuthzPolicy
	provider                   model.ExtAuthzProvider
}

func (a *portAuthz) empty() bool {
	return len(a.jwt) == 0 && len(a.custom) == 0 && len(a.deny) == 0 && len(a.allow) == 0 && len(a.audit) == 0
}

// enforcing reports whether anything but AUDIT applies: what a sidecar without
// authorization support cannot be trusted with.
func (a *portAuthz) enforcing() bool {
	return len(a.jwt) > 0 || len(a.custom) > 0 || len(a.deny) > 0 || len(a.allow) > 0
}

// authzFor groups the policies of a port. CUSTOM policies use one external
// authorizer per port (the first policy's); a CUSTOM policy naming another one, or
// one that is not configured, is enforced as DENY (fail closed) and reported.
func (g *generator) authzFor(p model.InboundPort) *portAuthz {
	a := &portAuthz{jwt: g.mesh.JWTFor(g.proxy, p)}
	for _, pol := range g.mesh.AuthzFor(g.proxy, p) {
		switch pol.Action {
		case model.AuthzCustom:
			prov, ok := g.mesh.ExtAuthzProvider(pol.Provider)
			switch {
			case !ok:
				g.errorf("inbound port %d: %s: no external authorizer %q is configured; its rules deny", p.Port, pol.Source, pol.Provider)
				a.deny = append(a.deny, pol)
			case a.provider.Name != "" && a.provider.Name != prov.Name:
				g.errorf("inbound port %d: %s: the port already uses the external authorizer %q (one per workload); its rules deny",
					p.Port, pol.Source, a.provider.Name)
				a.deny = append(a.deny, pol)
			default:
				a.provider = prov
				a.custom = append(a.custom, pol)
			}
		case model.AuthzDeny:
			a.deny = append(a.deny, pol)
		case model.AuthzAllow:
			a.allow = append(a.allow, pol)
		case model.AuthzAudit:
			a.audit = append(a.audit, pol)
		}
	}
	if a.provider.Name != "" && !slices.ContainsFunc(g.extAuthz, func(p model.ExtAuthzProvider) bool { return p.Name == a.provider.Name }) {
		g.extAuthz = append(g.extAuthz, a.provider)
	}
	return a
}

// normalize sets the path normalization of an HTTP connection manager.
func (g *generator) normalize(m *hcmv3.HttpConnectionManager) {
	if !g.proxy.Authz {
		return
	}
	m.NormalizePath = wrapperspb.Bool(true)
	switch g.mesh.PathNormalization {
	case model.PathNormalizationBase:
		m.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	case model.PathNormalizationMergeSlashes:
		m.MergeSlashes = true
		m.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	case model.PathNormalizationRejectEscaped:
		m.MergeSlashes = true
		m.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_REJECT_REQUEST
	default:
		m.MergeSlashes = true
		m.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	}
}

// httpAuthzFilters are the HTTP filters of an inbound port, in order: jwt_authn,
// AUDIT, CUSTOM (shadow RBAC + ext_authz), DENY, ALLOW.
func (g *generator) httpAuthzFilters(a *portAuthz, port uint32) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	add := func(name string, cfg proto.Message) {
		out = append(out, &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(cfg)}})
	}
	if len(a.jwt) > 0 {
		add(JWTAuthnFilter, jwtAuthn(a.jwt))
	}
	if pols := rbacPolicies(a.audit, port, true, ""); len(pols) > 0 {
		add(HTTPRBACFilter, &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: pols}})
	}
	if pols := rbacPolicies(a.custom, port, true, ExtAuthzPolicyPrefix); len(pols) > 0 {
		add(HTTPRBACFilter, &httprbacv3.RBAC{
			ShadowRules:           &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: pols},
			ShadowRulesStatPrefix: ExtAuthzStatPrefix,
		})
		add(HTTPExtAuthzFilter, &extauthzv3.ExtAuthz{
			Services:              &extauthzv3.ExtAuthz_GrpcService{GrpcService: extAuthzService(a.provider)},
			TransportApiVersion:   corev3.ApiVersion_V3,
			FailureModeAllow:      a.provider.FailOpen,
			FilterEnabledMetadata: extAuthzEnabled(HTTPRBACFilter),
		})
	}
	if pols := rbacPolicies(a.deny, port, true, ""); len(pols) > 0 {
		add(HTTPRBACFilter, &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: pols}})
	}
	if len(a.allow) > 0 {
		add(HTTPRBACFilter, &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: rbacPolicies(a.allow, port, true, "")}})
	}
	return out
}

// networkAuthzFilters are the network filters of a TCP inbound port before its TCP
// proxy, in the same order (no jwt_authn: tokens are HTTP).
func (g *generator) networkAuthzFilters(a *portAuthz, port uint32, statPrefix string) []*listenerv3.Filter {
	var out []*listenerv3.Filter
	add := func(name string, cfg proto.Message) {
		out = append(out, &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(cfg)}})
	}
	if pols := rbacPolicies(a.audit, port, false, ""); len(pols) > 0 {
		add(NetworkRBACFilter, &netrbacv3.RBAC{StatPrefix: statPrefix, Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_LOG, Policies: pols}})
	}
	if pols := rbacPolicies(a.custom, port, false, ExtAuthzPolicyPrefix); len(pols) > 0 {
		add(NetworkRBACFilter, &netrbacv3.RBAC{StatPrefix: statPrefix,
			ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: pols}, ShadowRulesStatPrefix: ExtAuthzStatPrefix})
		add(NetworkExtAuthzFilter, &netextauthzv3.ExtAuthz{
			StatPrefix:            statPrefix,
			GrpcService:           extAuthzService(a.provider),
			TransportApiVersion:   corev3.ApiVersion_V3,
			FailureModeAllow:      a.provider.FailOpen,
			FilterEnabledMetadata: extAuthzEnabled(NetworkRBACFilter),
		})
	}
	if pols := rbacPolicies(a.deny, port, false, ""); len(pols) > 0 {
		add(NetworkRBACFilter, &netrbacv3.RBAC{StatPrefix: statPrefix, Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: pols}})
	}
	if len(a.allow) > 0 {
		add(NetworkRBACFilter, &netrbacv3.RBAC{StatPrefix: statPrefix,
			Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: rbacPolicies(a.allow, port, false, "")}})
	}
	return out
}

func extAuthzService(p model.ExtAuthzProvider) *corev3.GrpcService {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = model.DefaultExtAuthzTimeout
	}
	return &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtAuthzClusterPrefix + p.Name}},
		Timeout:         durationpb.New(timeout),
	}
}

// extAuthzEnabled calls the authorizer only when the shadow RBAC matched a CUSTOM rule.
func extAuthzEnabled(rbacFilter string) *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: rbacFilter,
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: ExtAuthzStatPrefix + "shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "trellis-ext-authz"}}}},
	}
}

// jwtAuthn is the jwt_authn config of the RequestAuthentications of a port: a
// provider per jwtRule, and one requirement: any provider, or no token at all.
func jwtAuthn(pols []*model.JWTPolicy) *jwtv3.JwtAuthentication {
	cfg := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}}
	var reqs []*jwtv3.JwtRequirement
	for _, pol := range pols {
		for _, r := range pol.Rules {
			cfg.Providers[r.Provider] = jwtProvider(r)
			reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: r.Provider}})
		}
	}
	reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	cfg.Rules = []*jwtv3.RequirementRule{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
			RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}}}},
	}}
	return cfg
}

func jwtProvider(r *model.JWTRule) *jwtv3.JwtProvider {
	p := &jwtv3.JwtProvider{
		Issuer:    r.Issuer,
		Audiences: r.Audiences,
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: r.JWKS}}},
		FromParams:           r.FromParams,
		Forward:              r.ForwardOriginalToken,
		ForwardPayloadHeader: r.OutputPayloadToHeader,
		PayloadInMetadata:    JWTPayloadKey,
	}
	for _, h := range r.FromHeaders {
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.Name, ValuePrefix: h.Prefix})
	}
	if len(r.FromHeaders) == 0 && len(r.FromParams) == 0 {
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		p.FromParams = []string{"access_token"}
	}
	for _, c := range r.OutputClaimToHeaders {
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.Header, ClaimName: c.Claim})
	}
	return p
}

// deniedRoute answers every request of a port that a sidecar without authorization
// support cannot protect: fail closed.
func deniedRoute() *routev3.Route {
	return &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
			Status: 403,
			Body:   &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: DeniedBody}},
		}},
	}
}

// extAuthzClusters emits the clusters of the external authorizers the proxy's
// CUSTOM policies use: STATIC for an IP address, STRICT_DNS for a host name; h2c.
func (g *generator) extAuthzClusters() {
	slices.SortFunc(g.extAuthz, func(a, b model.ExtAuthzProvider) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range g.extAuthz {
		host, portStr, err := net.SplitHostPort(p.Address)
		port, perr := strconv.ParseUint(portStr, 10, 16)
		if err != nil || perr != nil {
			g.errorf("external authorizer %s: address %q is not HOST:PORT; no cluster", p.Name, p.Address)
			continue
		}
		typ := clusterv3.Cluster_STRICT_DNS
		if _, err := netip.ParseAddr(host); err == nil {
			typ = clusterv3.Cluster_STATIC
		}
		name := ExtAuthzClusterPrefix + p.Name
		c := baseCluster(name, typ, v1alpha1.ProtocolGRPC)
		c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
					Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}}},
			}}}},
		}
		g.res.Clusters = append(g.res.Clusters, c)
	}
}

package runtime

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

func httpFilter(name string, cfg proto.Message) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.MustAny(cfg)}}
}

func denyAll() *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"p": {
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
	}}}
}

func TestValidateAuthz(t *testing.T) {
	withHCM := func(mut func(*hcmv3.HttpConnectionManager)) proto.Message {
		h := xdstest.HCM("outbound", "outbound", nil)
		mut(h)
		l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
		l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(h)}
		return l
	}
	prepend := func(fs ...*hcmv3.HttpFilter) func(*hcmv3.HttpConnectionManager) {
		return func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = append(fs, h.HttpFilters...) }
	}
	withNetwork := func(fs ...*listenerv3.Filter) proto.Message {
		l := xdstest.TCPListener("inbound|9000", "127.0.0.1:15006", "inbound|9000||")
		l.FilterChains[0].Filters = append(fs, l.FilterChains[0].Filters...)
		return l
	}
	netFilter := func(name string, cfg proto.Message) *listenerv3.Filter {
		return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(cfg)}}
	}
	jwks := `{"keys":[]}`
	tests := []struct {
		name string
		l    proto.Message
		want string // substring of the error; "" for valid
	}{
		{"normalization", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.NormalizePath, h.MergeSlashes = wrapperspb.Bool(true), true
			h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_REJECT_REQUEST
		}), ""},
		{"normalization off", withHCM(func(h *hcmv3.HttpConnectionManager) { h.NormalizePath = wrapperspb.Bool(false) }),
			"typed_config.normalize_path: false is not supported"},
		{"unescape and redirect", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
		}), "path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT is not supported"},
		{"rbac filters", withHCM(prepend(httpFilter(HTTPRBACFilter, &httprbacv3.RBAC{Rules: denyAll()}),
			httpFilter(HTTPRBACFilter, &httprbacv3.RBAC{ShadowRules: denyAll(), ShadowRulesStatPrefix: "x_"}))), ""},
		{"rbac after the router's companions", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append(h.HttpFilters[:len(h.HttpFilters)-1:len(h.HttpFilters)-1],
				httpFilter(FaultFilter, &faultv3.HTTPFault{}), httpFilter(HTTPRBACFilter, &httprbacv3.RBAC{Rules: denyAll()}), h.HttpFilters[len(h.HttpFilters)-1])
		}), "must come before the other HTTP filters"},
		{"rbac matcher", withHCM(prepend(httpFilter(HTTPRBACFilter, &httprbacv3.RBAC{Rules: denyAll(), RulesStatPrefix: "x"}))),
			"http_filters[0].typed_config.rules_stat_prefix: is not supported"},
		{"rbac destination port", withHCM(prepend(httpFilter(HTTPRBACFilter, &httprbacv3.RBAC{Rules: &rbacv3.RBAC{
			Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{"p": {
				Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 80}}},
				Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}}}}}))),
			`http_filters[0].typed_config.rules.policies["p"].permissions[0].rule`},
		{"jwt_authn", withHCM(prepend(httpFilter(JWTAuthnFilter, &jwtv3.JwtAuthentication{
			Providers: map[string]*jwtv3.JwtProvider{"p": {Issuer: "i", JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{
				LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: jwks}}}}}}))), ""},
		{"remote jwks", withHCM(prepend(httpFilter(JWTAuthnFilter, &jwtv3.JwtAuthentication{
			Providers: map[string]*jwtv3.JwtProvider{"p": {Issuer: "i", JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{
				RemoteJwks: &jwtv3.RemoteJwks{}}}}}))), `providers["p"].remote_jwks: is not supported`},
		{"jwt_authn second", withHCM(prepend(httpFilter(HTTPRBACFilter, &httprbacv3.RBAC{Rules: denyAll()}),
			httpFilter(JWTAuthnFilter, &jwtv3.JwtAuthentication{}))), "must be the first HTTP filter"},
		{"ext_authz over HTTP", withHCM(prepend(httpFilter(HTTPExtAuthzFilter, &extauthzv3.ExtAuthz{
			Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{}}}))),
			"http_service: is not supported"},
		{"network rbac", withNetwork(netFilter(NetworkRBACFilter, &netrbacv3.RBAC{StatPrefix: "x", Rules: denyAll()})), ""},
		{"network rbac with a header", withNetwork(netFilter(NetworkRBACFilter, &netrbacv3.RBAC{StatPrefix: "x", Rules: &rbacv3.RBAC{
			Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{"p": {
				Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{}}},
				Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}}}}})),
			"a network filter sees no request path"},
		{"another network filter first", withNetwork(netFilter("envoy.filters.network.redis_proxy", &netrbacv3.RBAC{})),
			`filters[0].name: filter "envoy.filters.network.redis_proxy" is not supported before the last filter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(ListenerType, one(tt.l))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

package xdsgen

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/model"
)

// Rate limiting (docs/xds.md, "Rate limiting"): the names and fixed values of the
// contract.
const (
	LocalRateLimitFilter = "envoy.filters.http.local_ratelimit"
	RateLimitFilter      = "envoy.filters.http.ratelimit"
	// RateLimitCluster is the cluster of the rate-limit service.
	RateLimitCluster = "ratelimit"
	// RateLimitDomain is the RLS domain of every descriptor.
	RateLimitDomain = "trellis"
	// The descriptor keys (docs/ratelimit.md, "Global rules: descriptors").
	RateLimitKeyPolicy          = "policy"
	RateLimitKeySourcePrincipal = "source.principal"
	RateLimitHeaderKeyPrefix    = "header."
	// PeerMetadataFilter and PeerPrincipalKey name the dynamic metadata in which the
	// sidecar holds the client's principal (as Istio's authn filter does).
	PeerMetadataFilter = "istio_authn"
	PeerPrincipalKey   = "source.principal"
	// MaxDynamicDescriptors bounds the per-client buckets of one route's local limit.
	MaxDynamicDescriptors = 10000
)

// rateLimits is what the rules of one inbound port add to its listener.
type rateLimits struct {
	local, global []*model.RateLimitRule
}

func (g *generator) rateLimitsFor(p model.InboundPort) rateLimits {
	var out rateLimits
	if !model.IsHTTP(p.Protocol) {
		return out
	}
	for _, r := range g.mesh.RateLimitsFor(g.proxy, p) {
		if r.Global() {
			out.global = append(out.global, r)
		} else {
			out.local = append(out.local, r)
		}
	}
	if len(out.global) > 0 {
		g.rateLimitService = true
	}
	return out
}

// httpFilters are the HCM filters the port's rules need: local_ratelimit, then
// ratelimit.
func (rl rateLimits) httpFilters(g *generator, statPrefix string) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if len(rl.local) > 0 {
		out = append(out, &hcmv3.HttpFilter{Name: LocalRateLimitFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(&localrlv3.LocalRateLimit{StatPrefix: statPrefix})}})
	}
	if len(rl.global) > 0 {
		svc := g.mesh.RateLimitService
		out = append(out, &hcmv3.HttpFilter{Name: RateLimitFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: mustAny(&rlv3.RateLimit{
				Domain:          RateLimitDomain,
				StatPrefix:      statPrefix,
				Timeout:         durationpb.New(svc.Timeout),
				FailureModeDeny: svc.FailureModeDeny,
				RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{
					GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: RateLimitCluster}}},
					TransportApiVersion: corev3.ApiVersion_V3,
				},
			})}})
	}
	return out
}

// configure adds the per-route configurations of the rules to route.
func (rl rateLimits) configure(route *routev3.Route, statPrefix string) {
	if len(rl.local) == 0 && len(rl.global) == 0 {
		return
	}
	if route.TypedPerFilterConfig == nil {
		route.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	if len(rl.local) > 0 {
		cfg := &localrlv3.LocalRateLimit{
			StatPrefix: statPrefix,
			// No descriptor matched: no limit (the bucket is never empty).
			TokenBucket:             tokenBucket(^uint32(0), time.Second),
			FilterEnabled:           percent100(LocalRateLimitFilter + "_enabled"),
			FilterEnforced:          percent100(LocalRateLimitFilter + "_enforced"),
			EnableXRatelimitHeaders: commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
			EnableRetryAfterHeader:  true,
			MaxDynamicDescriptors:   wrapperspb.UInt32(MaxDynamicDescriptors),
		}
		for _, r := range rl.local {
			cfg.RateLimits = append(cfg.RateLimits, rateLimitActions(r)...)
			cfg.Descriptors = append(cfg.Descriptors, localDescriptors(r)...)
		}
		route.TypedPerFilterConfig[LocalRateLimitFilter] = mustAny(cfg)
	}
	if len(rl.global) > 0 {
		cfg := &rlv3.RateLimitPerRoute{}
		for _, r := range rl.global {
			cfg.RateLimits = append(cfg.RateLimits, rateLimitActions(r)...)
		}
		route.TypedPerFilterConfig[RateLimitFilter] = mustAny(cfg)
	}
}

func tokenBucket(requests uint32, per time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{
		MaxTokens:     requests,
		TokensPerFill: wrapperspb.UInt32(requests),
		FillInterval:  durationpb.New(per),
	}
}

func percent100(runtimeKey string) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{RuntimeKey: runtimeKey,
		DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
}

// rateLimitActions are the route rate_limits entries of a rule: one per match (any
// may hold), each producing the rule's descriptor. The first action names the rule and
// carries the match's conditions; then one action per header selector, then the
// principal.
func rateLimitActions(r *model.RateLimitRule) []*routev3.RateLimit {
	var tail []*routev3.RateLimit_Action
	for _, sel := range r.Rule.ClientSelectors {
		for _, h := range sel.Headers {
			key := RateLimitHeaderKeyPrefix + strings.ToLower(h.Name)
			if h.Type == v1alpha1.HeaderSelectorDistinct {
				tail = append(tail, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
					RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: strings.ToLower(h.Name), DescriptorKey: key}}})
				continue
			}
			tail = append(tail, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{
				HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
					DescriptorKey: key, DescriptorValue: h.Value, ExpectMatch: wrapperspb.Bool(true),
					Headers: []*routev3.HeaderMatcher{exactHeader(strings.ToLower(h.Name), h.Value)}}}})
		}
	}
	if len(principalSets(r)) > 0 {
		tail = append(tail, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_Metadata{
			Metadata: &routev3.RateLimit_Action_MetaData{
				DescriptorKey: RateLimitKeySourcePrincipal,
				MetadataKey: &metadatav3.MetadataKey{Key: PeerMetadataFilter, Path: []*metadatav3.MetadataKey_PathSegment{{
					Segment: &metadatav3.MetadataKey_PathSegment_Key{Key: PeerPrincipalKey}}}},
				Source: routev3.RateLimit_Action_MetaData_DYNAMIC,
			}}})
	}
	first := func(conds []*routev3.HeaderMatcher) *routev3.RateLimit_Action {
		if len(conds) == 0 {
			return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
				GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: RateLimitKeyPolicy, DescriptorValue: r.ID}}}
		}
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{
			HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
				DescriptorKey: RateLimitKeyPolicy, DescriptorValue: r.ID, ExpectMatch: wrapperspb.Bool(true), Headers: conds}}}
	}
	matches := r.Rule.Matches
	if len(matches) == 0 {
		matches = []v1alpha1.RateLimitMatch{{}}
	}
	var out []*routev3.RateLimit
	for _, m := range matches {
		actions := append([]*routev3.RateLimit_Action{first(matchConditions(m))}, tail...)
		out = append(out, &routev3.RateLimit{Actions: actions})
	}
	return out
}

// matchConditions are the header matchers of a rule's match: :path, :method, headers.
func matchConditions(m v1alpha1.RateLimitMatch) []*routev3.HeaderMatcher {
	var out []*routev3.HeaderMatcher
	if m.Path != nil && m.Path.Value != "" {
		out = append(out, &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: pathRegex(m.Path)}}}}})
	}
	if m.Method != "" {
		out = append(out, exactHeader(":method", m.Method))
	}
	for _, h := range m.Headers {
		out = append(out, exactHeader(strings.ToLower(h.Name), h.Value))
	}
	return out
}

// pathRegex matches :path (with its query) against a rule's path: exactly, or by
// path element for a prefix (/api matches /api and /api/x, not /apix).
func pathRegex(p *v1alpha1.RateLimitPathMatch) string {
	q := regexp.QuoteMeta(p.Value)
	const query = `(\?.*)?$`
	switch {
	case p.Type == v1alpha1.PathMatchExact:
		return "^" + q + query
	case strings.HasSuffix(p.Value, "/"):
		return "^" + q + `[^?]*` + query
	}
	return "^" + q + `(/[^?]*)?` + query
}

func exactHeader(name, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}}}
}

// principalSets are the rule's sourcePrincipals selectors, each a set; all must hold.
func principalSets(r *model.RateLimitRule) [][]string {
	var out [][]string
	for _, sel := range r.Rule.ClientSelectors {
		if len(sel.SourcePrincipals) > 0 {
			out = append(out, sel.SourcePrincipals)
		}
	}
	return out
}

// localDescriptors are the local_ratelimit descriptors of a Local rule, each with the
// rule's bucket: one, or one per principal the rule selects (an empty value, from
// "*", is a bucket per value, as a Distinct header's).
func localDescriptors(r *model.RateLimitRule) []*commonrlv3.LocalRateLimitDescriptor {
	entries := []*commonrlv3.RateLimitDescriptor_Entry{{Key: RateLimitKeyPolicy, Value: r.ID}}
	for _, sel := range r.Rule.ClientSelectors {
		for _, h := range sel.Headers {
			e := &commonrlv3.RateLimitDescriptor_Entry{Key: RateLimitHeaderKeyPrefix + strings.ToLower(h.Name)}
			if h.Type != v1alpha1.HeaderSelectorDistinct {
				e.Value = h.Value
			}
			entries = append(entries, e)
		}
	}
	bucket := tokenBucket(r.Rule.Limit.Requests, r.Rule.Limit.Per.Duration)
	desc := func(entries []*commonrlv3.RateLimitDescriptor_Entry) *commonrlv3.LocalRateLimitDescriptor {
		return &commonrlv3.LocalRateLimitDescriptor{Entries: entries, TokenBucket: bucket, ShadowMode: r.Rule.Shadow}
	}
	sets := principalSets(r)
	if len(sets) == 0 {
		return []*commonrlv3.LocalRateLimitDescriptor{desc(entries)}
	}
	var out []*commonrlv3.LocalRateLimitDescriptor
	for _, p := range sets[0] {
		if !inEvery(p, sets[1:]) {
			continue
		}
		if p == "*" {
			p = ""
		}
		out = append(out, desc(append(slices.Clone(entries), &commonrlv3.RateLimitDescriptor_Entry{Key: RateLimitKeySourcePrincipal, Value: p})))
	}
	return out
}

func inEvery(p string, sets [][]string) bool {
	for _, set := range sets {
		if p != "*" && !slices.Contains(set, p) && !slices.Contains(set, "*") {
			return false
		}
	}
	return true
}

// rateLimitCluster emits the cluster of the rate-limit service when a port uses it.
func (g *generator) rateLimitCluster() {
	svc := g.mesh.RateLimitService
	if !g.rateLimitService || svc == nil {
		return
	}
	addr, err := socketAddress(svc.Address)
	if err != nil {
		g.errorf("rate-limit service: address %q is not HOST:PORT (%v); no cluster", svc.Address, err)
		return
	}
	typ := clusterv3.Cluster_STRICT_DNS
	if _, err := netip.ParseAddr(addr.GetSocketAddress().GetAddress()); err == nil {
		typ = clusterv3.Cluster_STATIC
	}
	c := baseCluster(RateLimitCluster, typ, v1alpha1.ProtocolGRPC)
	c.LoadAssignment = &endpointv3.ClusterLoadAssignment{
		ClusterName: RateLimitCluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
		}}}},
	}
	g.res.Clusters = append(g.res.Clusters, c)
}

package xdsgen

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/model"
)

// The translation of IR routes into Envoy routes (docs/xds.md, "Routes"). One IR
// route becomes one Envoy route, except a Gateway API path prefix, which becomes
// two: the path itself, and the path followed by "/" as a prefix (Envoy prefixes
// are not segment-wise).

// routes translates a route; ref emits (once) the cluster a reference names.
func (g *generator) routes(r *model.Route) []*routev3.Route {
	if p := r.Match.Path; p != nil && p.Type == model.MatchPathPrefix {
		value := strings.TrimSuffix(p.Value, "/")
		exact, prefix := *r, *r
		exact.Match.Path = &model.StringMatch{Type: model.MatchExact, Value: value}
		prefix.Match.Path = &model.StringMatch{Type: model.MatchPrefix, Value: value + "/"}
		prefix.Rewrite, prefix.Redirect = slashRewrite(r.Rewrite), slashRedirect(r.Redirect)
		return []*routev3.Route{g.route(&exact), g.route(&prefix)}
	}
	return []*routev3.Route{g.route(r)}
}

// slashRewrite adapts a prefix rewrite for the "<prefix>/" half of a path prefix,
// so that the separating slash is kept: /foo -> /bar turns /foo/x into /bar/x.
func slashRewrite(rw *model.Rewrite) *model.Rewrite {
	if rw == nil || rw.Prefix == "" {
		return rw
	}
	out := *rw
	out.Prefix = strings.TrimSuffix(rw.Prefix, "/") + "/"
	return &out
}

func slashRedirect(rd *model.Redirect) *model.Redirect {
	if rd == nil || rd.PrefixRewrite == "" {
		return rd
	}
	out := *rd
	out.PrefixRewrite = strings.TrimSuffix(rd.PrefixRewrite, "/") + "/"
	return &out
}

func (g *generator) route(r *model.Route) *routev3.Route {
	out := &routev3.Route{Match: routeMatch(r.Match)}
	switch {
	case r.Redirect != nil:
		out.Action = &routev3.Route_Redirect{Redirect: redirectAction(r.Redirect)}
	case r.DirectResponse != nil:
		da := &routev3.DirectResponseAction{Status: r.DirectResponse.Status}
		if r.DirectResponse.Body != "" {
			da.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: r.DirectResponse.Body}}
		}
		out.Action = &routev3.Route_DirectResponse{DirectResponse: da}
	default:
		out.Action = &routev3.Route_Route{Route: g.routeAction(r)}
	}
	if h := r.Headers; !h.Empty() {
		out.RequestHeadersToAdd = headerOptions(h.RequestSet, h.RequestAdd)
		out.RequestHeadersToRemove = h.RequestRemove
		out.ResponseHeadersToAdd = headerOptions(h.ResponseSet, h.ResponseAdd)
		out.ResponseHeadersToRemove = h.ResponseRemove
	}
	if r.Fault != nil || r.CORS != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{}
		if r.Fault != nil {
			out.TypedPerFilterConfig[wellknown.Fault] = mustAny(fault(r.Fault))
		}
		if r.CORS != nil {
			out.TypedPerFilterConfig[wellknown.CORS] = mustAny(corsPolicy(r.CORS))
		}
	}
	return out
}

func routeMatch(m model.Match) *routev3.RouteMatch {
	out := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if p := m.Path; p != nil {
		switch p.Type {
		case model.MatchExact:
			out.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Value}
		case model.MatchPrefix:
			out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p.Value}
		case model.MatchRegex:
			out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.Value}}
		}
	}
	if m.IgnoreCase {
		out.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, h := range m.Headers {
		hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
		if h.Match.Type == model.MatchPresent {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		} else {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h.Match)}
		}
		out.Headers = append(out.Headers, hm)
	}
	for _, q := range m.QueryParams {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if q.Match.Type == model.MatchPresent {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Match)}
		}
		out.QueryParameters = append(out.QueryParameters, qm)
	}
	return out
}

func stringMatcher(m model.StringMatch) *matcherv3.StringMatcher {
	switch m.Type {
	case model.MatchPrefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Value}}
	case model.MatchRegex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Value}}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Value}}
}

func (g *generator) routeAction(r *model.Route) *routev3.RouteAction {
	out := &routev3.RouteAction{Timeout: durationpb.New(0)}
	if len(r.Destinations) == 1 {
		out.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: g.cluster(r.Destinations[0].Cluster)}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, d := range r.Destinations {
			cw := &routev3.WeightedCluster_ClusterWeight{Name: g.cluster(d.Cluster), Weight: wrapperspb.UInt32(d.Weight)}
			if h := d.Headers; !h.Empty() {
				cw.RequestHeadersToAdd = headerOptions(h.RequestSet, h.RequestAdd)
				cw.RequestHeadersToRemove = h.RequestRemove
				cw.ResponseHeadersToAdd = headerOptions(h.ResponseSet, h.ResponseAdd)
				cw.ResponseHeadersToRemove = h.ResponseRemove
			}
			wc.Clusters = append(wc.Clusters, cw)
		}
		out.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if r.Timeout != nil {
		out.Timeout = durationpb.New(r.Timeout.Std())
	}
	if rt := r.Retry; rt != nil {
		rp := &routev3.RetryPolicy{
			RetryOn:              strings.Join(rt.On, ","),
			NumRetries:           wrapperspb.UInt32(rt.Attempts),
			RetriableStatusCodes: rt.StatusCodes,
		}
		if rt.PerTryTimeout != nil {
			rp.PerTryTimeout = durationpb.New(rt.PerTryTimeout.Std())
		}
		if rt.Backoff != nil {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(rt.Backoff.Std())}
		}
		out.RetryPolicy = rp
	}
	for _, m := range r.Mirrors {
		out.RequestMirrorPolicies = append(out.RequestMirrorPolicies, &routev3.RouteAction_RequestMirrorPolicy{
			Cluster:         g.cluster(m.Cluster),
			RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: fraction(m.Percent)},
		})
	}
	if rw := r.Rewrite; rw != nil {
		switch {
		case rw.Regex != "":
			out.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: rw.Regex},
				Substitution: rw.Substitution,
			}
		case rw.Prefix != "":
			out.PrefixRewrite = rw.Prefix
		}
		if rw.Host != "" {
			out.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.Host}
		}
	}
	if h := r.Hash; h != nil {
		out.HashPolicy = []*routev3.RouteAction_HashPolicy{hashPolicy(h)}
	}
	return out
}

func hashPolicy(h *model.HashPolicy) *routev3.RouteAction_HashPolicy {
	switch {
	case h.Header != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: h.Header}}}
	case h.Cookie != "":
		c := &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie, Path: h.CookiePath}
		if h.CookieTTL != nil {
			c.Ttl = durationpb.New(h.CookieTTL.Std())
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}}
	case h.QueryParam != "":
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.QueryParam}}}
	}
	return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
		ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
}

// redirectCodes are the Envoy redirect codes by HTTP status.
var redirectCodes = map[uint32]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

func redirectAction(r *model.Redirect) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.Host, PortRedirect: r.Port, ResponseCode: redirectCodes[r.Code]}
	if r.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.Path != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Path}
	case r.PrefixRewrite != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PrefixRewrite}
	}
	return out
}

// headerOptions lists header additions: set ones overwrite, added ones append.
func headerOptions(set, add []model.Header) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, h := range set {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, h := range add {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// fraction is a percentage as Envoy's FractionalPercent, in millionths as Istio
// writes it.
func fraction(p model.Percent) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{
		Numerator:   uint32(float64(p)*10000 + 0.5),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

func fault(f *model.Fault) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if f.Delay != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay.Std())},
			Percentage:         fraction(f.DelayPercent),
		}
	}
	switch {
	case f.AbortGRPCStatus != nil:
		out.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: *f.AbortGRPCStatus}, Percentage: fraction(f.AbortPercent)}
	case f.AbortHTTPStatus != 0:
		out.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: f.AbortHTTPStatus}, Percentage: fraction(f.AbortPercent)}
	}
	return out
}

func corsPolicy(c *model.CORS) *corsv3.CorsPolicy {
	out := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.AllowMethods, ","),
		AllowHeaders:  strings.Join(c.AllowHeaders, ","),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ","),
	}
	for _, o := range c.AllowOrigins {
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, stringMatcher(o))
	}
	if c.MaxAge != nil {
		out.MaxAge = formatSeconds(c.MaxAge.Std().Seconds())
	}
	if c.AllowCredentials != nil {
		out.AllowCredentials = wrapperspb.Bool(*c.AllowCredentials)
	}
	return out
}

package runtime

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/types/known/durationpb"

	"trellis.dev/trellis/internal/proxy/internal/strmatch"
)

// Names of the HTTP filters configured per route.
const (
	FaultFilter = "envoy.filters.http.fault"
	CORSFilter  = "envoy.filters.http.cors"
)

type routeSpec struct {
	name   string
	vhosts []vhostSpec
}

type vhostSpec struct {
	name    string
	domains []string // lower case
	routes  []*Route // cluster references by name, resolved by link
}

func parseRouteConfig(rc *routev3.RouteConfiguration) (*routeSpec, error) {
	if err := checkFields(rc.ProtoReflect(), routeConfigFields); err != nil {
		return nil, err
	}
	spec := &routeSpec{name: rc.GetName()}
	domainOwner := map[string]string{}
	vhostNames := map[string]bool{}
	for i, vh := range rc.GetVirtualHosts() {
		at := fmt.Sprintf("virtual_hosts[%d]", i)
		if vhostNames[vh.GetName()] {
			return nil, fieldErrorf(at+".name", "%q is used by two virtual hosts", vh.GetName())
		}
		vhostNames[vh.GetName()] = true
		v := vhostSpec{name: vh.GetName()}
		for j, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			if strings.Contains(d, "*") && d != "*" {
				return nil, fieldErrorf(fmt.Sprintf("%s.domains[%d]", at, j), "wildcard domain %q is not supported (only \"*\" is)", d)
			}
			if owner, dup := domainOwner[d]; dup {
				return nil, fieldErrorf(fmt.Sprintf("%s.domains[%d]", at, j), "domain %q is also in virtual host %q", d, owner)
			}
			domainOwner[d] = vh.GetName()
			v.domains = append(v.domains, d)
		}
		for j, r := range vh.GetRoutes() {
			route, err := parseRoute(r)
			if err != nil {
				return nil, prefixed(fmt.Sprintf("%s.routes[%d]", at, j), err)
			}
			v.routes = append(v.routes, route)
		}
		spec.vhosts = append(spec.vhosts, v)
	}
	return pgvOr(rc, spec)
}

func parseRoute(r *routev3.Route) (*Route, error) {
	route := &Route{Name: r.GetName()}
	var err error
	if route.Match, err = parseRouteMatch(r.GetMatch()); err != nil {
		return nil, prefixed("match", err)
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if route.Action, err = parseRouteAction(a.Route); err != nil {
			return nil, prefixed("route", err)
		}
	case *routev3.Route_Redirect:
		if route.Redirect, err = parseRedirect(a.Redirect); err != nil {
			return nil, prefixed("redirect", err)
		}
	case *routev3.Route_DirectResponse:
		route.Direct = &DirectResponse{Status: int(a.DirectResponse.GetStatus()), Body: a.DirectResponse.GetBody().GetInlineString()}
	default:
		return nil, fieldErrorf("route", "one of route, redirect or direct_response is required")
	}
	if route.RequestHeaders, err = parseHeaderMutation(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), "request"); err != nil {
		return nil, err
	}
	if route.ResponseHeaders, err = parseHeaderMutation(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove(), "response"); err != nil {
		return nil, err
	}
	for name, cfg := range r.GetTypedPerFilterConfig() {
		at := fmt.Sprintf("typed_per_filter_config[%q]", name)
		switch name {
		case FaultFilter:
			f := &faultv3.HTTPFault{}
			if err := unpack(cfg, f); err != nil {
				return nil, prefixed(at, err)
			}
			if route.Fault, err = parseFault(f); err != nil {
				return nil, prefixed(at, err)
			}
		case CORSFilter:
			c := &corsv3.CorsPolicy{}
			if err := unpack(cfg, c); err != nil {
				return nil, prefixed(at, err)
			}
			if route.CORS, err = parseCORS(c); err != nil {
				return nil, prefixed(at, err)
			}
		case LocalRateLimitFilter:
			if err := parseLocalRateLimit(cfg, route); err != nil {
				return nil, prefixed(at, err)
			}
		case RateLimitFilter:
			if err := parseRateLimitPerRoute(cfg, route); err != nil {
				return nil, prefixed(at, err)
			}
		default:
			return nil, fieldErrorf(at, "filter %q is not supported (want %s, %s, %s or %s)", name, FaultFilter, CORSFilter, LocalRateLimitFilter, RateLimitFilter)
		}
	}
	return route, nil
}

func parseRouteMatch(m *routev3.RouteMatch) (RouteMatch, error) {
	var out RouteMatch
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Kind, out.Path = PathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.Kind, out.Path = PathExact, p.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex())
		if err != nil {
			return out, prefixed("safe_regex.regex", err)
		}
		out.Kind, out.Regex = PathRegex, re
	default:
		return out, fieldErrorf("", "one of prefix, path or safe_regex is required")
	}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		out.CaseInsensitive = true
	}
	for i, h := range m.GetHeaders() {
		hm, err := parseHeaderMatcher(h)
		if err != nil {
			return out, prefixed(fmt.Sprintf("headers[%d]", i), err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		at := fmt.Sprintf("query_parameters[%d]", i)
		if q.GetName() == "" {
			return out, fieldErrorf(at+".name", "is required")
		}
		qm := QueryMatcher{Name: q.GetName()}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := parseStringMatcher(s.StringMatch)
			if err != nil {
				return out, prefixed(at+".string_match", err)
			}
			qm.String = sm
		case *routev3.QueryParameterMatcher_PresentMatch:
			if !s.PresentMatch {
				return out, fieldErrorf(at+".present_match", "false is not supported (Envoy ignores it)")
			}
		default:
			return out, fieldErrorf(at, "one of string_match or present_match is required")
		}
		out.Query = append(out.Query, qm)
	}
	return out, nil
}

// pseudoHeaders are the HTTP/2 pseudo-headers a header matcher may name.
var pseudoHeaders = map[string]bool{":method": true, ":authority": true, ":path": true, ":scheme": true}

func parseHeaderMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) {
	name := h.GetName()
	switch {
	case strings.HasPrefix(name, ":"):
		if !pseudoHeaders[name] {
			return HeaderMatcher{}, fieldErrorf("name", "pseudo-header %q is not supported (want :method, :authority, :path or :scheme)", name)
		}
	case !httpguts.ValidHeaderFieldName(name):
		return HeaderMatcher{}, fieldErrorf("name", "%q is not a header name", name)
	default:
		name = http.CanonicalHeaderKey(name)
	}
	hm := HeaderMatcher{Name: name, Invert: h.GetInvertMatch()}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		sm, err := parseStringMatcher(s.StringMatch)
		if err != nil {
			return hm, prefixed("string_match", err)
		}
		hm.String = sm
	case *routev3.HeaderMatcher_PresentMatch:
		hm.Present = s.PresentMatch
	default:
		return hm, fieldErrorf("", "one of string_match or present_match is required")
	}
	return hm, nil
}

func parseStringMatcher(m *matcherv3.StringMatcher) (*StringMatcher, error) {
	sm := &StringMatcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.Kind, sm.Value = StringExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.Kind, sm.Value = StringPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.Kind, sm.Value = StringSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.Kind, sm.Value = StringContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex.GetRegex())
		if err != nil {
			return nil, prefixed("safe_regex.regex", err)
		}
		sm.Kind, sm.Regex = StringRegex, re
	default:
		return nil, fieldErrorf("", "one of exact, prefix, suffix, contains or safe_regex is required")
	}
	return sm, nil
}

// compileRegex compiles an RE2 expression that must match a whole string.
func compileRegex(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, fieldErrorf("", "is required")
	}
	re, err := strmatch.Whole(expr)
	if err != nil {
		return nil, fieldErrorf("", "%q is not a valid RE2 regular expression: %v", expr, err)
	}
	return re, nil
}

func parseRouteAction(a *routev3.RouteAction) (*RouteAction, error) {
	out := &RouteAction{}
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return nil, fieldErrorf("cluster", "is required")
		}
		out.Clusters = []WeightedCluster{{name: cs.Cluster, Weight: 1}}
	case *routev3.RouteAction_WeightedClusters:
		for i, wc := range cs.WeightedClusters.GetClusters() {
			at := fmt.Sprintf("weighted_clusters.clusters[%d]", i)
			if wc.GetName() == "" {
				return nil, fieldErrorf(at+".name", "is required")
			}
			w := WeightedCluster{name: wc.GetName(), Weight: wc.GetWeight().GetValue()}
			var err error
			if w.RequestHeaders, err = parseHeaderMutation(wc.GetRequestHeadersToAdd(), wc.GetRequestHeadersToRemove(), "request"); err != nil {
				return nil, prefixed(at, err)
			}
			if w.ResponseHeaders, err = parseHeaderMutation(wc.GetResponseHeadersToAdd(), wc.GetResponseHeadersToRemove(), "response"); err != nil {
				return nil, prefixed(at, err)
			}
			out.Clusters = append(out.Clusters, w)
		}
		if len(out.Clusters) == 0 {
			return nil, fieldErrorf("weighted_clusters.clusters", "is required")
		}
	default:
		return nil, fieldErrorf("cluster", "one of cluster or weighted_clusters is required")
	}
	if out.total = totalWeight(out.Clusters); out.total == 0 {
		return nil, fieldErrorf("weighted_clusters", "the weights add up to 0")
	}
	var err error
	if out.Timeout, err = duration(a.GetTimeout(), "timeout"); err != nil {
		return nil, err
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		if out.Retry, err = parseRetryPolicy(rp); err != nil {
			return nil, prefixed("retry_policy", err)
		}
	}
	for i, m := range a.GetRequestMirrorPolicies() {
		at := fmt.Sprintf("request_mirror_policies[%d]", i)
		if m.GetCluster() == "" {
			return nil, fieldErrorf(at+".cluster", "is required")
		}
		f := Fraction{Numerator: 1, Denominator: 1}
		if rf := m.GetRuntimeFraction(); rf != nil {
			if f, err = fraction(rf.GetDefaultValue()); err != nil {
				return nil, prefixed(at+".runtime_fraction.default_value", err)
			}
		}
		out.Mirrors = append(out.Mirrors, Mirror{name: m.GetCluster(), Fraction: f})
	}
	// prefix_rewrite is a plain string: empty means none.
	if a.GetPrefixRewrite() != "" {
		out.PrefixRewrite, out.HasPrefixRewrite = a.GetPrefixRewrite(), true
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		if out.HasPrefixRewrite {
			return nil, fieldErrorf("regex_rewrite", "cannot be set with prefix_rewrite")
		}
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil || rr.GetPattern().GetRegex() == "" {
			return nil, fieldErrorf("regex_rewrite.pattern.regex", "%q is not a valid RE2 regular expression: %v", rr.GetPattern().GetRegex(), err)
		}
		out.RegexRewrite, out.RegexSubstitution = re, envoySubstitution(rr.GetSubstitution())
	}
	out.HostRewrite = a.GetHostRewriteLiteral()
	for i, hp := range a.GetHashPolicy() {
		p, err := parseHashPolicy(hp)
		if err != nil {
			return nil, prefixed(fmt.Sprintf("hash_policy[%d]", i), err)
		}
		out.HashPolicies = append(out.HashPolicies, p)
	}
	return out, nil
}

// envoySubstitution turns Envoy's regex substitution (\1 for a group) into Go's
// Expand syntax (${1}), escaping a literal $.
func envoySubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func parseRetryPolicy(rp *routev3.RetryPolicy) (*RetryPolicy, error) {
	p := &RetryPolicy{NumRetries: DefaultNumRetries, BaseInterval: DefaultBaseInterval}
	for _, cond := range strings.Split(rp.GetRetryOn(), ",") {
		cond = strings.TrimSpace(cond)
		if cond == "" {
			continue
		}
		bit, ok := retryOnNames[cond]
		if !ok {
			return nil, fieldErrorf("retry_on", "condition %q is not supported", cond)
		}
		p.On |= bit
	}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = n.GetValue()
	}
	var err error
	if p.PerTryTimeout, err = duration(rp.GetPerTryTimeout(), "per_try_timeout"); err != nil {
		return nil, err
	}
	for i, c := range rp.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return nil, fieldErrorf(fmt.Sprintf("retriable_status_codes[%d]", i), "%d is not an HTTP status", c)
		}
		p.RetriableStatusCodes = append(p.RetriableStatusCodes, c)
	}
	if bo := rp.GetRetryBackOff(); bo != nil {
		if p.BaseInterval, err = duration(bo.GetBaseInterval(), "retry_back_off.base_interval"); err != nil {
			return nil, err
		}
		if p.BaseInterval <= 0 {
			return nil, fieldErrorf("retry_back_off.base_interval", "must be positive")
		}
		if p.MaxInterval, err = duration(bo.GetMaxInterval(), "retry_back_off.max_interval"); err != nil {
			return nil, err
		}
		if p.MaxInterval != 0 && p.MaxInterval < p.BaseInterval {
			return nil, fieldErrorf("retry_back_off.max_interval", "must not be below base_interval")
		}
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 10 * p.BaseInterval
	}
	return p, nil
}

func parseHashPolicy(hp *routev3.RouteAction_HashPolicy) (HashPolicy, error) {
	switch p := hp.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		name := p.Header.GetHeaderName()
		if !httpguts.ValidHeaderFieldName(name) {
			return HashPolicy{}, fieldErrorf("header.header_name", "%q is not a header name", name)
		}
		return HashPolicy{Kind: HashHeader, Name: http.CanonicalHeaderKey(name)}, nil
	case *routev3.RouteAction_HashPolicy_Cookie_:
		if p.Cookie.GetName() == "" {
			return HashPolicy{}, fieldErrorf("cookie.name", "is required")
		}
		out := HashPolicy{Kind: HashCookie, Name: p.Cookie.GetName(), CookiePath: p.Cookie.GetPath()}
		if ttl := p.Cookie.GetTtl(); ttl != nil {
			d, err := duration(ttl, "cookie.ttl")
			if err != nil {
				return HashPolicy{}, err
			}
			out.CookieTTL, out.HasCookieTTL = d, true
		}
		return out, nil
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if !p.ConnectionProperties.GetSourceIp() {
			return HashPolicy{}, fieldErrorf("connection_properties.source_ip", "must be true")
		}
		return HashPolicy{Kind: HashSourceIP}, nil
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		if p.QueryParameter.GetName() == "" {
			return HashPolicy{}, fieldErrorf("query_parameter.name", "is required")
		}
		return HashPolicy{Kind: HashQueryParameter, Name: p.QueryParameter.GetName()}, nil
	}
	return HashPolicy{}, fieldErrorf("", "one of header, cookie, connection_properties or query_parameter is required")
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
	routev3.RedirectAction_FOUND:              http.StatusFound,
	routev3.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
	routev3.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
	routev3.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
}

func parseRedirect(r *routev3.RedirectAction) (*Redirect, error) {
	out := &Redirect{
		Scheme: r.GetSchemeRedirect(),
		Host:   r.GetHostRedirect(),
		Port:   r.GetPortRedirect(),
		Path:   r.GetPathRedirect(),
	}
	if _, ok := r.GetPathRewriteSpecifier().(*routev3.RedirectAction_PrefixRewrite); ok {
		out.PrefixRewrite, out.HasPrefixRewrite = r.GetPrefixRewrite(), true
	}
	if out.Port > 65535 {
		return nil, fieldErrorf("port_redirect", "%d is not a port", out.Port)
	}
	code, ok := redirectCodes[r.GetResponseCode()]
	if !ok {
		return nil, fieldErrorf("response_code", "%s is not supported", r.GetResponseCode())
	}
	out.Code = code
	return out, nil
}

func parseHeaderMutation(add []*corev3.HeaderValueOption, remove []string, which string) (HeaderMutation, error) {
	var m HeaderMutation
	for i, o := range add {
		at := fmt.Sprintf("%s_headers_to_add[%d]", which, i)
		key := o.GetHeader().GetKey()
		if err := mutableHeader(key); err != nil {
			return m, prefixed(at+".header.key", err)
		}
		if !httpguts.ValidHeaderFieldValue(o.GetHeader().GetValue()) {
			return m, fieldErrorf(at+".header.value", "%q is not a valid header value", o.GetHeader().GetValue())
		}
		hv := HeaderValue{Key: http.CanonicalHeaderKey(key), Value: o.GetHeader().GetValue()}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			hv.Overwrite = true
		default:
			return m, fieldErrorf(at+".append_action", "%s is not supported (want APPEND_IF_EXISTS_OR_ADD or OVERWRITE_IF_EXISTS_OR_ADD)", o.GetAppendAction())
		}
		m.Add = append(m.Add, hv)
	}
	for i, key := range remove {
		if err := mutableHeader(key); err != nil {
			return m, prefixed(fmt.Sprintf("%s_headers_to_remove[%d]", which, i), err)
		}
		m.Remove = append(m.Remove, http.CanonicalHeaderKey(key))
	}
	return m, nil
}

// mutableHeader rejects what a route may not change: pseudo-headers and Host (use
// host_rewrite_literal).
func mutableHeader(key string) error {
	switch {
	case !httpguts.ValidHeaderFieldName(key):
		return fieldErrorf("", "%q is not a header name", key)
	case strings.EqualFold(key, "host"):
		return fieldErrorf("", "the Host header cannot be changed this way (use host_rewrite_literal)")
	}
	return nil
}

func parseFault(f *faultv3.HTTPFault) (*Fault, error) {
	if err := checkFields(f.ProtoReflect(), faultFields); err != nil {
		return nil, err
	}
	out := &Fault{}
	var err error
	if d := f.GetDelay(); d != nil {
		if d.GetFixedDelay() == nil {
			return nil, fieldErrorf("delay.fixed_delay", "is required")
		}
		if out.Delay, err = duration(d.GetFixedDelay(), "delay.fixed_delay"); err != nil {
			return nil, err
		}
		if out.DelayFraction, err = fraction(d.GetPercentage()); err != nil {
			return nil, prefixed("delay.percentage", err)
		}
	}
	if a := f.GetAbort(); a != nil {
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus > 599 {
				return nil, fieldErrorf("abort.http_status", "%d is not an HTTP status (200-599)", e.HttpStatus)
			}
			out.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			out.AbortGRPC, out.HasGRPCAbort = int(e.GrpcStatus), true
		default:
			return nil, fieldErrorf("abort", "one of http_status or grpc_status is required")
		}
		if out.AbortFraction, err = fraction(a.GetPercentage()); err != nil {
			return nil, prefixed("abort.percentage", err)
		}
	}
	return pgvOr(f, out)
}

func parseCORS(c *corsv3.CorsPolicy) (*CORS, error) {
	if err := checkFields(c.ProtoReflect(), corsPolicyFields); err != nil {
		return nil, err
	}
	out := &CORS{
		AllowMethods:     c.GetAllowMethods(),
		AllowHeaders:     c.GetAllowHeaders(),
		ExposeHeaders:    c.GetExposeHeaders(),
		MaxAge:           c.GetMaxAge(),
		AllowCredentials: c.GetAllowCredentials().GetValue(),
	}
	if out.MaxAge != "" {
		if _, err := strconv.ParseUint(out.MaxAge, 10, 32); err != nil {
			return nil, fieldErrorf("max_age", "%q is not a number of seconds", out.MaxAge)
		}
	}
	for i, m := range c.GetAllowOriginStringMatch() {
		sm, err := parseStringMatcher(m)
		if err != nil {
			return nil, prefixed(fmt.Sprintf("allow_origin_string_match[%d]", i), err)
		}
		out.Origins = append(out.Origins, *sm)
	}
	return pgvOr(c, out)
}

// fraction converts a FractionalPercent; nil is 0%, as Envoy reads it.
func fraction(p *typev3.FractionalPercent) (Fraction, error) {
	f := Fraction{Numerator: p.GetNumerator()}
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		f.Denominator = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		f.Denominator = 10_000
	case typev3.FractionalPercent_MILLION:
		f.Denominator = 1_000_000
	default:
		return f, fieldErrorf("denominator", "%s is not supported", p.GetDenominator())
	}
	return f, nil
}

// duration converts an optional Duration field, which must not be negative.
func duration(d *durationpb.Duration, field string) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fieldErrorf(field, "%v", err)
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, fieldErrorf(field, "must not be negative")
	}
	return v, nil
}

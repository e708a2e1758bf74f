package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"
)

// The actions of a VirtualService HTTP route, converted to the IR: retries, faults,
// mirrors, header changes, redirects, rewrites and CORS.

// Istio's retry conditions when a VirtualService sets none, and its default policy.
var (
	defaultRetryOn    = []string{"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
	defaultRetryCodes = []uint32{503}
)

// DefaultRetry is Istio's default retry policy, which applies to every route that
// sets none: two retries on connection failures, refused streams, gRPC UNAVAILABLE
// and CANCELLED, and HTTP 503.
func DefaultRetry() *Retry {
	return &Retry{Attempts: 2, On: slices.Clone(defaultRetryOn), StatusCodes: slices.Clone(defaultRetryCodes)}
}

// retryConditions are the retry_on values the sidecar implements.
var retryConditions = map[string]bool{
	"5xx": true, "gateway-error": true, "connect-failure": true, "reset": true, "retriable-4xx": true,
	"refused-stream": true, "retriable-status-codes": true, "cancelled": true, "deadline-exceeded": true,
	"internal": true, "resource-exhausted": true, "unavailable": true,
}

func (t *routeTranslator) retry(h *networkingapi.HTTPRetry, field string) *Retry {
	if h == nil {
		return DefaultRetry()
	}
	if h.GetAttempts() <= 0 {
		return nil // attempts 0 disables retries
	}
	out := &Retry{Attempts: uint32(h.GetAttempts()), PerTryTimeout: durationOf(h.GetPerTryTimeout()), Backoff: durationOf(h.GetBackoff())}
	if h.GetRetryOn() == "" {
		out.On, out.StatusCodes = slices.Clone(defaultRetryOn), slices.Clone(defaultRetryCodes)
		return out
	}
	for _, c := range strings.Split(h.GetRetryOn(), ",") {
		c = strings.TrimSpace(c)
		if code, err := strconv.ParseUint(c, 10, 32); err == nil && code >= 100 && code <= 599 {
			out.StatusCodes = appendNew(out.StatusCodes, uint32(code))
			out.On = appendNew(out.On, "retriable-status-codes")
			continue
		}
		if !retryConditions[c] {
			t.b.unsupportedf(t.obj, field+".retryOn", "retry condition %q is not supported and is ignored (supported: 5xx, gateway-error, connect-failure, reset, retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, and status codes)", c)
			continue
		}
		out.On = appendNew(out.On, c)
	}
	if len(out.On) == 0 {
		out.On, out.StatusCodes = slices.Clone(defaultRetryOn), slices.Clone(defaultRetryCodes)
	}
	return out
}

func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// percentOf is an Istio Percent, or def when unset.
func percentOf(p *networkingapi.Percent, def Percent) Percent {
	if p == nil {
		return def
	}
	return Percent(p.GetValue())
}

func (t *routeTranslator) fault(f *networkingapi.HTTPFaultInjection, field string) *Fault {
	if f == nil {
		return nil
	}
	out := &Fault{}
	if d := f.GetDelay(); d.GetFixedDelay() != nil {
		out.Delay = durationOf(d.GetFixedDelay())
		out.DelayPercent = percentOf(d.GetPercentage(), 100)
		if d.GetPercentage() == nil && d.GetPercent() > 0 {
			out.DelayPercent = Percent(d.GetPercent())
		}
	}
	if a := f.GetAbort(); a != nil {
		out.AbortPercent = percentOf(a.GetPercentage(), 100)
		switch {
		case a.GetGrpcStatus() != "":
			code, ok := grpcCode(a.GetGrpcStatus())
			if !ok {
				t.errorf(field+".abort.grpcStatus", "unknown gRPC status %q; the abort is skipped", a.GetGrpcStatus())
				out.AbortPercent = 0
				break
			}
			out.AbortGRPCStatus = &code
		case a.GetHttpStatus() != 0:
			out.AbortHTTPStatus = uint32(a.GetHttpStatus())
		default:
			out.AbortPercent = 0
		}
	}
	if out.Delay == nil && out.AbortHTTPStatus == 0 && out.AbortGRPCStatus == nil {
		return nil
	}
	return out
}

// grpcCodes are the gRPC status codes by name.
var grpcCodes = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func grpcCode(s string) (uint32, bool) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n < uint64(len(grpcCodes)) {
		return uint32(n), true
	}
	i := slices.Index(grpcCodes, strings.ToUpper(s))
	return uint32(max(i, 0)), i >= 0
}

func (t *routeTranslator) mirrors(h *networkingapi.HTTPRoute, field string) []Mirror {
	var out []Mirror
	if m := h.GetMirror(); m != nil {
		pct := percentOf(h.GetMirrorPercentage(), 100)
		if h.GetMirrorPercentage() == nil && h.GetMirrorPercent() != nil {
			pct = Percent(h.GetMirrorPercent().GetValue())
		}
		if ref, ok := t.destination(m, field+".mirror"); ok {
			out = append(out, Mirror{Cluster: ref, Percent: pct})
		}
	}
	for i, m := range h.GetMirrors() {
		if ref, ok := t.destination(m.GetDestination(), fmt.Sprintf("%s.mirrors[%d].destination", field, i)); ok {
			out = append(out, Mirror{Cluster: ref, Percent: percentOf(m.GetPercentage(), 100)})
		}
	}
	return out
}

func headerOps(h *networkingapi.Headers) *HeaderOps {
	if h == nil {
		return nil
	}
	out := &HeaderOps{
		RequestSet:     headerList(h.GetRequest().GetSet()),
		RequestAdd:     headerList(h.GetRequest().GetAdd()),
		RequestRemove:  h.GetRequest().GetRemove(),
		ResponseSet:    headerList(h.GetResponse().GetSet()),
		ResponseAdd:    headerList(h.GetResponse().GetAdd()),
		ResponseRemove: h.GetResponse().GetRemove(),
	}
	if out.Empty() {
		return nil
	}
	return out
}

func headerList(m map[string]string) []Header {
	var out []Header
	for _, k := range sortedKeys(m) {
		out = append(out, Header{Name: k, Value: m[k]})
	}
	return out
}

// mergeHeaderOps is a followed by b.
func mergeHeaderOps(a, b *HeaderOps) *HeaderOps {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &HeaderOps{
		RequestSet:     append(slices.Clone(a.RequestSet), b.RequestSet...),
		RequestAdd:     append(slices.Clone(a.RequestAdd), b.RequestAdd...),
		RequestRemove:  append(slices.Clone(a.RequestRemove), b.RequestRemove...),
		ResponseSet:    append(slices.Clone(a.ResponseSet), b.ResponseSet...),
		ResponseAdd:    append(slices.Clone(a.ResponseAdd), b.ResponseAdd...),
		ResponseRemove: append(slices.Clone(a.ResponseRemove), b.ResponseRemove...),
	}
}

func redirect(r *networkingapi.HTTPRedirect) *Redirect {
	out := &Redirect{
		Scheme:        r.GetScheme(),
		Host:          r.GetAuthority(),
		Port:          r.GetPort(),
		Path:          r.GetUri(),
		PrefixRewrite: r.GetPrefixRewrite(),
		Code:          r.GetRedirectCode(),
	}
	if out.Code == 0 {
		out.Code = 301
	}
	return out
}

// rewrite converts an Istio rewrite. A URI rewrite replaces the matched prefix or
// path; after a regex match it replaces what the regex matched.
func rewrite(r *networkingapi.HTTPRewrite, path *StringMatch) *Rewrite {
	if r == nil {
		return nil
	}
	out := &Rewrite{Host: r.GetAuthority()}
	switch {
	case r.GetUriRegexRewrite() != nil:
		out.Regex, out.Substitution = r.GetUriRegexRewrite().GetMatch(), r.GetUriRegexRewrite().GetRewrite()
	case r.GetUri() != "" && path != nil && path.Type == MatchRegex:
		out.Regex, out.Substitution = path.Value, r.GetUri()
	default:
		out.Prefix = r.GetUri()
	}
	if *out == (Rewrite{}) {
		return nil
	}
	return out
}

func cors(c *networkingapi.CorsPolicy) *CORS {
	if c == nil {
		return nil
	}
	out := &CORS{
		AllowMethods:  c.GetAllowMethods(),
		AllowHeaders:  c.GetAllowHeaders(),
		ExposeHeaders: c.GetExposeHeaders(),
		MaxAge:        durationOf(c.GetMaxAge()),
	}
	for _, o := range c.GetAllowOrigin() {
		out.AllowOrigins = append(out.AllowOrigins, StringMatch{Type: MatchExact, Value: o})
	}
	for _, o := range c.GetAllowOrigins() {
		if sm := stringMatch(o); sm != nil && sm.Type != MatchPresent {
			out.AllowOrigins = append(out.AllowOrigins, *sm)
		}
	}
	if c.GetAllowCredentials() != nil {
		out.AllowCredentials = new(c.GetAllowCredentials().GetValue())
	}
	return out
}

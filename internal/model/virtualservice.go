package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"

	"trellis.dev/trellis/internal/config"
)

// meshGateway is the reserved gateway name of the sidecars.
const meshGateway = "mesh"

// addVirtualService gives the ports of the rule's hosts their routes. Hosts resolve
// relative to the VirtualService's namespace. A host that already has routes (from
// a VirtualService earlier in namespace/name order) is reported and skipped, as
// Istio uses one VirtualService per host for sidecars.
func (b *builder) addVirtualService(vs config.VirtualService) {
	obj := objectRef("VirtualService", &vs.ObjectMeta, vs.Pos)
	spec := &vs.Spec
	if gw := spec.GetGateways(); len(gw) > 0 && !slices.Contains(gw, meshGateway) {
		return // bound to gateways only: nothing for sidecars (the gateways are reported as unsupported)
	}
	for i, host := range spec.GetHosts() {
		field := "spec.hosts[" + strconv.Itoa(i) + "]"
		if strings.Contains(host, "*") {
			b.configErrorf(obj, field, "wildcard host %q is not supported: name the services; the host is skipped", host)
			continue
		}
		svc := b.mesh.Resolve(host, obj.Namespace)
		if svc == nil {
			b.configErrorf(obj, field, "no service %q seen from namespace %q; the host is skipped", host, obj.Namespace)
			continue
		}
		t := &routeTranslator{b: b, obj: obj, ns: obj.Namespace, svc: svc}
		for _, port := range svc.Ports {
			if port.routedBy != "" {
				b.configErrorf(obj, field, "%s port %d already has routes from %s; this host is skipped", svc.FQDN, port.Number, port.routedBy)
				continue
			}
			t.port = port
			if IsHTTP(port.Protocol) {
				port.Routes = t.httpRoutes(spec.GetHttp())
			} else {
				port.TCPRoutes = t.tcpRoutes(spec.GetTcp())
			}
			if len(port.Routes) > 0 || len(port.TCPRoutes) > 0 {
				port.routedBy = obj.String()
			}
		}
	}
}

// routeTranslator translates the routes of one document for one service port.
type routeTranslator struct {
	b    *builder
	obj  config.ObjectRef
	ns   string // the namespace host names resolve from
	svc  *Service
	port *Port
}

func (t *routeTranslator) errorf(field, format string, args ...any) {
	t.b.configErrorf(t.obj, field, format, args...)
}

func (t *routeTranslator) httpRoutes(routes []*networkingapi.HTTPRoute) []*Route {
	var out []*Route
	for i, h := range routes {
		field := "spec.http[" + strconv.Itoa(i) + "]"
		matches := h.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingapi.HTTPMatchRequest{{}}
		}
		for j, m := range matches {
			if m.GetPort() != 0 && m.GetPort() != t.port.Number {
				continue
			}
			if gw := m.GetGateways(); len(gw) > 0 && !slices.Contains(gw, meshGateway) {
				continue
			}
			source := t.obj.Kind + " " + t.obj.Namespace + "/" + t.obj.Name + " " + field
			if len(h.GetMatch()) > 0 {
				source += ".match[" + strconv.Itoa(j) + "]"
			}
			r := &Route{Name: h.GetName(), Source: source, Match: httpMatch(m)}
			t.httpAction(r, h, field)
			out = append(out, r)
		}
	}
	return out
}

func httpMatch(m *networkingapi.HTTPMatchRequest) Match {
	out := Match{
		Path:            stringMatch(m.GetUri()),
		IgnoreCase:      m.GetIgnoreUriCase(),
		SourceLabels:    m.GetSourceLabels(),
		SourceNamespace: m.GetSourceNamespace(),
	}
	if out.Path != nil && out.Path.Type == MatchPresent {
		out.Path = nil
	}
	for _, name := range sortedKeys(m.GetHeaders()) {
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(name), Match: *presentIfEmpty(m.GetHeaders()[name])})
	}
	for _, name := range sortedKeys(m.GetWithoutHeaders()) {
		out.Headers = append(out.Headers, HeaderMatch{Name: strings.ToLower(name), Match: *presentIfEmpty(m.GetWithoutHeaders()[name]), Invert: true})
	}
	if sm := stringMatch(m.GetMethod()); sm != nil && sm.Type != MatchPresent {
		out.Headers = append(out.Headers, HeaderMatch{Name: ":method", Match: *sm})
	}
	if sm := stringMatch(m.GetAuthority()); sm != nil && sm.Type != MatchPresent {
		out.Headers = append(out.Headers, HeaderMatch{Name: ":authority", Match: *sm})
	}
	for _, name := range sortedKeys(m.GetQueryParams()) {
		out.QueryParams = append(out.QueryParams, QueryMatch{Name: name, Match: *presentIfEmpty(m.GetQueryParams()[name])})
	}
	return out
}

// stringMatch converts an Istio StringMatch; nil for nil, Present for an empty one.
func stringMatch(sm *networkingapi.StringMatch) *StringMatch {
	switch {
	case sm == nil:
		return nil
	case sm.GetMatchType() == nil:
		return &StringMatch{Type: MatchPresent}
	}
	switch m := sm.GetMatchType().(type) {
	case *networkingapi.StringMatch_Exact:
		return &StringMatch{Type: MatchExact, Value: m.Exact}
	case *networkingapi.StringMatch_Prefix:
		return &StringMatch{Type: MatchPrefix, Value: m.Prefix}
	case *networkingapi.StringMatch_Regex:
		return &StringMatch{Type: MatchRegex, Value: m.Regex}
	}
	return &StringMatch{Type: MatchPresent}
}

func presentIfEmpty(sm *networkingapi.StringMatch) *StringMatch {
	if out := stringMatch(sm); out != nil {
		return out
	}
	return &StringMatch{Type: MatchPresent}
}

// httpAction fills in what a route does with the requests it matches.
func (t *routeTranslator) httpAction(r *Route, h *networkingapi.HTTPRoute, field string) {
	r.Headers = headerOps(h.GetHeaders())
	switch {
	case h.GetRedirect() != nil:
		r.Redirect = redirect(h.GetRedirect())
		return
	case h.GetDirectResponse() != nil:
		r.DirectResponse = &DirectResponse{Status: h.GetDirectResponse().GetStatus(), Body: h.GetDirectResponse().GetBody().GetString_()}
		return
	}
	equal := t.equalWeights(len(h.GetRoute()), totalWeight(h.GetRoute()), field+".route")
	for j, d := range h.GetRoute() {
		df := field + ".route[" + strconv.Itoa(j) + "]"
		ref, ok := t.destination(d.GetDestination(), df+".destination")
		if !ok {
			continue
		}
		weight := uint32(max(d.GetWeight(), 0))
		if len(h.GetRoute()) == 1 || equal {
			weight = 100
		}
		if weight == 0 {
			continue // a weight of 0 sends nothing
		}
		r.Destinations = append(r.Destinations, Destination{Cluster: ref, Weight: weight, Headers: headerOps(d.GetHeaders())})
	}
	if len(r.Destinations) == 0 {
		t.errorf(field+".route", "no destination can be reached; the route answers 503")
		r.DirectResponse = &DirectResponse{Status: 503, Body: "no destination for this route"}
		r.Headers = nil
		return
	}
	if len(r.Destinations) == 1 && !r.Destinations[0].Headers.Empty() {
		r.Headers = mergeHeaderOps(r.Headers, r.Destinations[0].Headers)
		r.Destinations[0].Headers = nil
	}
	r.Timeout = durationOf(h.GetTimeout())
	if r.Timeout != nil && *r.Timeout == 0 {
		r.Timeout = nil
	}
	r.Retry = t.retry(h.GetRetries(), field+".retries")
	r.Fault = t.fault(h.GetFault(), field+".fault")
	r.Mirrors = t.mirrors(h, field)
	r.Rewrite = rewrite(h.GetRewrite(), r.Match.Path)
	r.CORS = cors(h.GetCorsPolicy())
	r.Hash = t.hashOf(r.Destinations[0].Cluster)
}

// destination resolves a destination to a cluster. Without a port it is the port
// the request came to if the destination has it, else the destination's only port.
func (t *routeTranslator) destination(d *networkingapi.Destination, field string) (ClusterRef, bool) {
	svc := t.b.mesh.Resolve(d.GetHost(), t.ns)
	if svc == nil {
		t.errorf(field+".host", "no service %q seen from namespace %q; the destination is skipped", d.GetHost(), t.ns)
		return ClusterRef{}, false
	}
	return t.clusterRef(svc, d.GetPort().GetNumber(), "", d.GetSubset(), field)
}

// clusterRef picks the port (number, else name, else the request's port, else the
// only one) and checks the subset.
func (t *routeTranslator) clusterRef(svc *Service, number uint32, name, subset, field string) (ClusterRef, bool) {
	var port *Port
	switch {
	case number != 0:
		if port = svc.Port(number); port == nil {
			t.errorf(field+".port", "service %s has no port %d; the destination is skipped", svc.FQDN, number)
			return ClusterRef{}, false
		}
	case svc.Port(t.port.Number) != nil:
		port = svc.Port(t.port.Number)
	case len(svc.Ports) == 1:
		port = svc.Ports[0]
	default:
		t.errorf(field, "service %s has several ports and none is %d: name one; the destination is skipped", svc.FQDN, t.port.Number)
		return ClusterRef{}, false
	}
	if subset != "" && port.Subset(subset) == nil {
		t.errorf(field+".subset", "no DestinationRule defines subset %q of %s; the destination is skipped", subset, svc.FQDN)
		return ClusterRef{}, false
	}
	return ClusterRef{Service: svc.FQDN, Port: port.Number, Subset: subset}, true
}

// hashOf is the consistent-hash key of a cluster's load balancer, if it hashes.
func (t *routeTranslator) hashOf(ref ClusterRef) *HashPolicy {
	info, err := t.b.mesh.Cluster(ref)
	if err != nil || info.Policy == nil || info.Policy.LoadBalancer == nil {
		return nil
	}
	return info.Policy.LoadBalancer.Hash
}

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

// tcpRoutes are the TCP routes of a TCP port: each entry that applies to the port,
// once per match (for its source restrictions).
func (t *routeTranslator) tcpRoutes(routes []*networkingapi.TCPRoute) []*TCPRoute {
	var out []*TCPRoute
	for i, tr := range routes {
		field := "spec.tcp[" + strconv.Itoa(i) + "]"
		matches := tr.GetMatch()
		if len(matches) == 0 {
			matches = []*networkingapi.L4MatchAttributes{{}}
		}
		var dests []Destination
		equal := t.equalWeights(len(tr.GetRoute()), totalWeight(tr.GetRoute()), field+".route")
		for j, d := range tr.GetRoute() {
			ref, ok := t.destination(d.GetDestination(), field+".route["+strconv.Itoa(j)+"].destination")
			if !ok {
				continue
			}
			weight := uint32(max(d.GetWeight(), 0))
			if len(tr.GetRoute()) == 1 || equal {
				weight = 100
			}
			if weight > 0 {
				dests = append(dests, Destination{Cluster: ref, Weight: weight})
			}
		}
		if len(dests) == 0 {
			t.errorf(field+".route", "no destination can be reached; the route is skipped")
			continue
		}
		for _, m := range matches {
			if m.GetPort() != 0 && m.GetPort() != t.port.Number {
				continue
			}
			if gw := m.GetGateways(); len(gw) > 0 && !slices.Contains(gw, meshGateway) {
				continue
			}
			out = append(out, &TCPRoute{
				Source:          t.obj.String() + " " + field,
				SourceLabels:    m.GetSourceLabels(),
				SourceNamespace: m.GetSourceNamespace(),
				Destinations:    dests,
			})
		}
	}
	return out
}

// weighted is a destination with a weight.
type weighted interface{ GetWeight() int32 }

func totalWeight[T weighted](ds []T) int64 {
	var n int64
	for _, d := range ds {
		n += int64(max(d.GetWeight(), 0))
	}
	return n
}

// equalWeights reports whether several destinations without any weight share the
// traffic equally (and says so: Istio wants their weights to add up to 100).
func (t *routeTranslator) equalWeights(n int, total int64, field string) bool {
	if n < 2 || total > 0 {
		return false
	}
	t.errorf(field, "%d destinations and no weights: give them weights that add up to 100; the traffic is split equally", n)
	return true
}

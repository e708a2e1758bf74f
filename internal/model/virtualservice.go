package model

import (
	"slices"
	"strconv"
	"strings"

	networkingapi "istio.io/api/networking/v1alpha3"

	"trellis.dev/trellis/internal/api/v1alpha1"
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
		t := &routeTranslator{b: b, obj: obj, ns: obj.Namespace, svc: svc, exportTo: exportTo(spec.GetExportTo(), obj.Namespace)}
		for _, port := range svc.Ports {
			if port.routedBy != "" {
				b.configErrorf(obj, field, "%s port %d already has routes from %s; this host is skipped", svc.FQDN, port.Number, port.routedBy)
				continue
			}
			t.port = port
			if IsHTTP(port.Protocol) {
				port.Routes = t.httpRoutes(spec.GetHttp())
			}
			if !IsHTTP(port.Protocol) || port.Protocol == v1alpha1.ProtocolAuto {
				port.TCPRoutes = t.tcpRoutes(spec.GetTcp()) // AUTO: what is not HTTP
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
	// exportTo are the namespaces the document's routes apply to.
	exportTo ExportTo
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
			r := &Route{Name: h.GetName(), Source: source, Match: httpMatch(m), ExportTo: t.exportTo}
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
				ExportTo:        t.exportTo,
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

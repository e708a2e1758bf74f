package model

import "k8s.io/apimachinery/pkg/labels"

// RoutesFor lists the routes of a service port that apply to proxy, in the order
// they are tried: those whose sourceLabels and sourceNamespace hold for the proxy's
// workload. Gateway API consumer routes (an HTTPRoute in the client's namespace
// whose parent is a Service of another namespace) take precedence over the
// service's own (producer) routes: when one applies, the producer routes do not.
// Empty means the port's default route.
func (p *Port) RoutesFor(proxy *Proxy) []*Route {
	var out []*Route
	consumer := false
	for _, r := range p.Routes {
		if r.ExportTo.Includes(proxy.Namespace) && appliesTo(r.Match.SourceLabels, r.Match.SourceNamespace, proxy) {
			out = append(out, r)
			consumer = consumer || r.Consumer
		}
	}
	if consumer {
		kept := out[:0]
		for _, r := range out {
			if r.Consumer {
				kept = append(kept, r)
			}
		}
		out = kept
	}
	return out
}

// TCPRouteFor is the first TCP route of a port that applies to proxy, or nil.
func (p *Port) TCPRouteFor(proxy *Proxy) *TCPRoute {
	for _, r := range p.TCPRoutes {
		if r.ExportTo.Includes(proxy.Namespace) && appliesTo(r.SourceLabels, r.SourceNamespace, proxy) {
			return r
		}
	}
	return nil
}

func appliesTo(sourceLabels map[string]string, sourceNamespace string, proxy *Proxy) bool {
	if sourceNamespace != "" && sourceNamespace != proxy.Namespace {
		return false
	}
	return len(sourceLabels) == 0 || labels.SelectorFromSet(sourceLabels).Matches(labels.Set(proxy.Labels))
}

// DefaultRoute is the route of a service port that no rule routes: every request to
// the port's cluster, with Istio's default retry policy and no timeout.
func (m *Mesh) DefaultRoute(svc *Service, port *Port) *Route {
	r := &Route{
		Source:       "default",
		Destinations: []Destination{{Cluster: ClusterRef{Service: svc.FQDN, Port: port.Number}, Weight: 100}},
		Retry:        DefaultRetry(),
	}
	if port.Policy != nil && port.Policy.LoadBalancer != nil {
		r.Hash = port.Policy.LoadBalancer.Hash
	}
	return r
}

package xdsgen

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/model"
)

// Scopes groups proxies by what GenerateScoped gives them, so that a control plane
// generates the scoped resources once per group (Key, Generate) and shares them.
// Build one per mesh with NewScopes. Not safe for concurrent use: Generate caches.
type Scopes struct {
	mesh *model.Mesh
	// selectors are the distinct sourceLabels of the mesh's routes: whether each
	// matches a proxy's labels is part of its key.
	selectors []labels.Selector
	// clusters are the outbound clusters (and assignments) generated so far, by
	// clusterKey: scopes that reach the same cluster share one object.
	clusters map[string]sharedCluster
}

// sharedCluster is an outbound cluster and its assignment (nil for a DNS cluster,
// which carries its endpoints).
type sharedCluster struct {
	cluster   *clusterv3.Cluster
	endpoints *endpointv3.ClusterLoadAssignment
}

// clusterKey is what an outbound cluster depends on besides the mesh: its name,
// whether the proxy takes part in mutual TLS, and the proxy's namespace when the
// port's DestinationRule is exported to some namespaces only.
func (s *Scopes) clusterKey(g *generator, ref model.ClusterRef) string {
	k := ref.Name() + "|" + strconv.FormatBool(g.proxy.MTLS)
	if svc := s.mesh.Service(ref.Service); svc != nil {
		if p := svc.Port(ref.Port); p != nil && p.RuleExportTo != nil {
			k += "|" + g.scope.Namespace
		}
	}
	return k
}

// Generate is GenerateScoped for a proxy of this mesh, reusing the outbound
// clusters generated for earlier proxies. Proxies with equal Keys get equal
// resources: call it once per key.
func (s *Scopes) Generate(proxy *model.Proxy) (*Resources, error) {
	g := newGenerator(s.mesh, proxy)
	g.shared = s
	return generateScoped(g)
}

// NewScopes indexes what of mesh depends on a proxy's labels.
func NewScopes(mesh *model.Mesh) *Scopes {
	seen := map[string]bool{}
	s := &Scopes{mesh: mesh, clusters: map[string]sharedCluster{}}
	add := func(set map[string]string) {
		if len(set) == 0 {
			return
		}
		sel := labels.SelectorFromSet(set)
		if k := sel.String(); !seen[k] {
			seen[k] = true
			s.selectors = append(s.selectors, sel)
		}
	}
	for _, svc := range mesh.Services {
		for _, p := range svc.Ports {
			for _, r := range p.Routes {
				add(r.Match.SourceLabels)
			}
			for _, r := range p.TCPRoutes {
				add(r.SourceLabels)
			}
		}
	}
	slices.SortFunc(s.selectors, func(a, b labels.Selector) int { return cmp.Compare(a.String(), b.String()) })
	return s
}

// Key identifies what GenerateScoped gives proxy: proxies with equal keys get equal
// resources. It holds the proxy's scope (namespace and Sidecar), the settings the
// scoped resources depend on (mutual TLS, authorization, transparent mode, an
// outbound listener) and which routes' sourceLabels match its labels.
func (s *Scopes) Key(proxy *model.Proxy) string {
	var b strings.Builder
	b.WriteString(s.mesh.ScopeOf(proxy).Key())
	for _, f := range []bool{proxy.MTLS, proxy.Authz, proxy.Transparent, proxy.Outbound != ""} {
		b.WriteString("|" + strconv.FormatBool(f))
	}
	if len(s.selectors) > 0 {
		b.WriteByte('|')
		set := labels.Set(proxy.Labels)
		for _, sel := range s.selectors {
			if sel.Matches(set) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
	}
	return b.String()
}

// Merge returns the resources of a and b together, sorted by name; a resource of
// both (a cluster that an upstream and a route reach) is b's. Either may be nil.
func Merge(a, b *Resources) *Resources {
	if a == nil {
		a = &Resources{}
	}
	if b == nil {
		b = &Resources{}
	}
	return &Resources{
		Listeners: mergeNamed(a.Listeners, b.Listeners, (*listenerv3.Listener).GetName),
		Routes:    mergeNamed(a.Routes, b.Routes, (*routev3.RouteConfiguration).GetName),
		Clusters:  mergeNamed(a.Clusters, b.Clusters, (*clusterv3.Cluster).GetName),
		Endpoints: mergeNamed(a.Endpoints, b.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName),
		Secrets:   mergeNamed(a.Secrets, b.Secrets, (*tlsv3.Secret).GetName),
	}
}

// mergeNamed merges two lists sorted by name; b wins a name both have.
func mergeNamed[M any](a, b []M, name func(M) string) []M {
	if len(a) == 0 {
		return slices.Clone(b)
	}
	if len(b) == 0 {
		return slices.Clone(a)
	}
	out := make([]M, 0, len(a)+len(b))
	inB := make(map[string]bool, len(b))
	for _, m := range b {
		inB[name(m)] = true
	}
	for _, m := range a {
		if !inB[name(m)] {
			out = append(out, m)
		}
	}
	out = append(out, b...)
	slices.SortStableFunc(out, func(x, y M) int { return cmp.Compare(name(x), name(y)) })
	return out
}

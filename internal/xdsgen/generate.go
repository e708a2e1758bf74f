package xdsgen

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/names"
)

// ConnectTimeout is the connect timeout of every cluster.
const ConnectTimeout = 10 * time.Second

// Resources are the xDS resources of one proxy, each slice sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Secrets are SDS secrets: the control plane adds ROOTCA (RootCASecret);
	// Generate emits none, since the trust bundle is not part of the model.
	Secrets []*tlsv3.Secret
}

// Generate returns the resources of proxy in mesh: those of GenerateScoped and of
// GenerateOwn, merged. When some part cannot be generated it is left out and the
// returned error says what and why; Resources is never nil.
func Generate(mesh *model.Mesh, proxy *model.Proxy) (*Resources, error) {
	scoped, err := GenerateScoped(mesh, proxy)
	own, ownErr := GenerateOwn(mesh, proxy)
	return Merge(scoped, own), errors.Join(err, ownErr)
}

// GenerateScoped returns the part of proxy's resources that every proxy with the
// same ScopeKey shares: the outbound route configuration, the outbound clusters and
// endpoints the routes reach and, in transparent mode, the listeners of the
// services' virtual IPs. Errors name proxy.
func GenerateScoped(mesh *model.Mesh, proxy *model.Proxy) (*Resources, error) {
	return generateScoped(newGenerator(mesh, proxy))
}

func generateScoped(g *generator) (*Resources, error) {
	proxy := g.proxy
	g.serviceListeners()
	if proxy.Outbound != "" || g.routedByVIP {
		g.outboundRoutes()
	}
	g.sort()
	return g.res, errors.Join(g.errs...)
}

// GenerateOwn returns the part of proxy's resources that is its own: its listeners
// (outbound, inbound, upstreams, capture) and their clusters.
func GenerateOwn(mesh *model.Mesh, proxy *model.Proxy) (*Resources, error) {
	g := newGenerator(mesh, proxy)
	g.outboundListener()
	g.inbound()
	g.upstreams()
	g.transparent()
	g.extAuthzClusters()
	g.rateLimitCluster()
	g.dedupe()
	g.sort()
	return g.res, errors.Join(g.errs...)
}

func newGenerator(mesh *model.Mesh, proxy *model.Proxy) *generator {
	return &generator{mesh: mesh, proxy: proxy, scope: mesh.ScopeOf(proxy), res: &Resources{},
		clusters: make(map[string]bool), upstreamBinds: make(map[string]string)}
}

type generator struct {
	mesh  *model.Mesh
	proxy *model.Proxy
	// scope is what the proxy sees (its namespace, its Sidecar).
	scope model.Scope
	// shared, if set, holds the outbound clusters already generated for other
	// scopes of the mesh (Scopes.Generate).
	shared   *Scopes
	res      *Resources
	clusters map[string]bool // outbound clusters already emitted, by name
	// routedByVIP is set when a virtual listener of a service routes by the
	// outbound route configuration (transparent.go).
	routedByVIP bool
	// upstreamBinds maps upstream listener names to their bind address.
	upstreamBinds map[string]string
	// extAuthz are the external authorizers the inbound ports use (authz.go).
	extAuthz []model.ExtAuthzProvider
	// rateLimitService is set when a port sends checks to the rate-limit service
	// (ratelimit.go).
	rateLimitService bool
	// grpc is set for a proxyless gRPC application (GenerateGRPC): clusters are
	// narrowed to what grpc-go implements (grpc.go).
	grpc bool
	errs []error
}

func (g *generator) errorf(format string, args ...any) {
	g.errs = append(g.errs, fmt.Errorf("proxy %s: "+format, append([]any{g.proxy.ID}, args...)...))
}

// outboundListener emits the outbound listener, which routes by the outbound route
// configuration.
func (g *generator) outboundListener() {
	if g.proxy.Outbound == "" {
		return
	}
	addr, err := listenAddress(g.proxy.Outbound)
	if err != nil {
		g.errorf("outbound listener: %v", err)
		return
	}
	m := rdsHCM(names.OutboundListener, names.OutboundRoute)
	g.normalize(m)
	hcm := httpFilter(m)
	g.res.Listeners = append(g.res.Listeners, listener(names.OutboundListener, addr, corev3.TrafficDirection_OUTBOUND, hcm))
}

// outboundRoutes emits the outbound route configuration, one virtual host per
// HTTP-family port of every service the proxy sees, and the clusters the routes
// reach.
func (g *generator) outboundRoutes() {
	rc := &routev3.RouteConfiguration{Name: names.OutboundRoute}
	for _, svc := range g.mesh.Services {
		if !g.scope.Sees(svc) {
			continue
		}
		for _, port := range svc.Ports {
			if !model.IsHTTP(port.Protocol) {
				continue
			}
			routes := port.RoutesFor(g.proxy)
			if len(routes) == 0 {
				routes = []*model.Route{g.mesh.DefaultRoute(svc, port)}
			}
			vh := &routev3.VirtualHost{
				Name:    svc.FQDN + ":" + strconv.FormatUint(uint64(port.Number), 10),
				Domains: domains(svc, port.Number, g.proxy.Namespace),
			}
			if g.proxy.Transparent {
				vh.Domains = append(vh.Domains, vipDomains(svc, port.Number)...)
			}
			for _, r := range routes {
				vh.Routes = append(vh.Routes, g.routes(r)...)
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
	}
	g.res.Routes = append(g.res.Routes, rc)
}

// domains lists the host names of a service port as a client in namespace from
// writes them: every alias with :port, and without it for the default port.
func domains(svc *model.Service, port uint32, from string) []string {
	var out []string
	for _, alias := range svc.Aliases(from) {
		out = append(out, alias+":"+strconv.FormatUint(uint64(port), 10))
		if port == svc.DefaultPort {
			out = append(out, alias)
		}
	}
	return out
}

// inbound emits, per workload port, the inbound listener and the static cluster that
// reaches the app.
func (g *generator) inbound() {
	for _, p := range g.proxy.Inbound {
		p.Protocol = g.mesh.InboundProtocol(g.proxy.ID, p)
		if p.Inbound == "" {
			g.errorf("inbound port %d: the metadata gives no inbound address; no listener", p.Port)
			continue
		}
		addr, err := listenAddress(p.Inbound)
		if err != nil {
			g.errorf("inbound port %d: %v", p.Port, err)
			continue
		}
		target, err := socketAddress(p.Target)
		if err != nil {
			g.errorf("inbound port %d: target: %v", p.Port, err)
			continue
		}
		name := names.InboundListener(p.Port)
		cluster := names.InboundCluster(p.Port)
		authz := g.authzFor(p)
		route := prefixRoute(cluster)
		if !g.proxy.Authz && authz.enforcing() {
			// A sidecar that cannot enforce authorization must not serve the port:
			// fail closed (docs/xds.md, "Authorization and request authentication").
			if !model.IsHTTP(p.Protocol) || p.Protocol == v1alpha1.ProtocolAuto {
				g.errorf("inbound port %d: authorization policies apply but the sidecar does not implement them (no metadata authz); no listener", p.Port)
				g.res.Clusters = append(g.res.Clusters, staticCluster(cluster, p.Protocol, target))
				continue
			}
			g.errorf("inbound port %d: authorization policies apply but the sidecar does not implement them (no metadata authz); every request is denied", p.Port)
			route = deniedRoute()
		}
		var rl rateLimits
		if route.GetRoute() != nil {
			rl = g.rateLimitsFor(p)
			rl.configure(route, name)
		}
		filters := func(isHTTP bool) chainFilters {
			return func(xfcc hcmv3.HttpConnectionManager_ForwardClientCertDetails) []*listenerv3.Filter {
				if !isHTTP {
					var fs []*listenerv3.Filter
					if g.proxy.Authz {
						fs = g.networkAuthzFilters(authz, p.Port, name)
					}
					return append(fs, tcpProxy(name, cluster))
				}
				m := &hcmv3.HttpConnectionManager{
					StatPrefix: name,
					RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
						Name: name,
						VirtualHosts: []*routev3.VirtualHost{{
							Name:    name,
							Domains: []string{"*"},
							Routes:  []*routev3.Route{route},
						}},
					}},
					ForwardClientCertDetails: xfcc,
				}
				if xfcc == hcmv3.HttpConnectionManager_SANITIZE_SET {
					m.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Uri: true}
				}
				if g.proxy.Authz {
					g.normalize(m)
					m.HttpFilters = g.httpAuthzFilters(authz, p.Port)
				}
				m.HttpFilters = append(m.HttpFilters, rl.httpFilters(g, name)...)
				return []*listenerv3.Filter{httpFilter(m)}
			}
		}
		filter := filters(model.IsHTTP(p.Protocol))
		var l *listenerv3.Listener
		if !g.proxy.MTLS {
			// A sidecar without mutual TLS gets the listener of before: one plaintext
			// chain, nothing it would not know.
			l = &listenerv3.Listener{Name: name, Address: addr, TrafficDirection: corev3.TrafficDirection_INBOUND,
				FilterChains: []*listenerv3.FilterChain{{Filters: filter(hcmv3.HttpConnectionManager_SANITIZE)}}}
		} else {
			mode := g.mesh.MTLSMode(g.proxy.Namespace, g.proxy.Labels, p.Port)
			l = inboundListener(name, addr, mode, p.Protocol, g.mesh.TrustDomain, filter)
		}
		if p.Protocol == v1alpha1.ProtocolAuto {
			detectProtocol(l, filters(false))
		}
		g.res.Listeners = append(g.res.Listeners, l)
		g.res.Clusters = append(g.res.Clusters, staticCluster(cluster, p.Protocol, target))
	}
}

// upstreams emits a TCP proxy listener per upstream bind, and the cluster it reaches.
func (g *generator) upstreams() {
	for _, u := range g.proxy.Upstreams {
		svc := g.mesh.Resolve(u.Service, g.proxy.Namespace)
		if svc != nil && !g.scope.Sees(svc) {
			g.errorf("upstream %s:%d (bind %s): service %s is not visible from this proxy (exportTo, Sidecar egress hosts); skipped", u.Service, u.Port, u.Bind, svc.FQDN)
			continue
		}
		if svc == nil {
			g.errorf("upstream %s:%d (bind %s): no service %q seen from namespace %q; skipped", u.Service, u.Port, u.Bind, u.Service, g.proxy.Namespace)
			continue
		}
		port := svc.Port(u.Port)
		if port == nil {
			g.errorf("upstream %s:%d (bind %s): service %s has no port %d; skipped", u.Service, u.Port, u.Bind, svc.FQDN, u.Port)
			continue
		}
		addr, err := listenAddress(u.Bind)
		if err != nil {
			g.errorf("upstream %s:%d: bind: %v; skipped", u.Service, u.Port, err)
			continue
		}
		name := names.UpstreamListener(svc.FQDN, port.Number)
		if g.upstreamBinds[name] != "" {
			g.errorf("upstream %s:%d (bind %s): %s:%d already has the upstream bind %s; skipped",
				u.Service, u.Port, u.Bind, svc.FQDN, port.Number, g.upstreamBinds[name])
			continue
		}
		g.upstreamBinds[name] = u.Bind
		g.res.Listeners = append(g.res.Listeners, listener(name, addr, corev3.TrafficDirection_OUTBOUND,
			g.upstreamProxy(name, svc, port)))
	}
}

// upstreamProxy is the TCP proxy of an upstream listener: to the port's cluster, or
// to the weighted destinations of the first TCP route that applies to the proxy.
func (g *generator) upstreamProxy(name string, svc *model.Service, port *model.Port) *listenerv3.Filter {
	dests := []model.Destination{{Cluster: model.ClusterRef{Service: svc.FQDN, Port: port.Number}, Weight: 100}}
	if r := port.TCPRouteFor(g.proxy); r != nil {
		dests = r.Destinations
	}
	tp := &tcpproxyv3.TcpProxy{StatPrefix: name}
	if len(dests) == 1 {
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: g.cluster(dests[0].Cluster)}
	} else {
		wc := &tcpproxyv3.TcpProxy_WeightedCluster{}
		for _, d := range dests {
			wc.Clusters = append(wc.Clusters, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: g.cluster(d.Cluster), Weight: d.Weight})
		}
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: wc}
	}
	if info, err := g.mesh.ClusterFrom(dests[0].Cluster, g.scope.Namespace); err == nil && info.Policy != nil &&
		info.Policy.ConnectionPool != nil && info.Policy.ConnectionPool.TCPIdleTimeout != nil {
		tp.IdleTimeout = durationpb.New(info.Policy.ConnectionPool.TCPIdleTimeout.Std())
	}
	return &listenerv3.Filter{
		Name:       wellknown.TCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
	}
}

func (g *generator) sort() {
	slices.SortFunc(g.res.Listeners, func(a, b *listenerv3.Listener) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(g.res.Routes, func(a, b *routev3.RouteConfiguration) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(g.res.Clusters, func(a, b *clusterv3.Cluster) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(g.res.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
		return cmp.Compare(a.ClusterName, b.ClusterName)
	})
}

// listenAddress parses ip:port, where a listener binds, into an Envoy address. The
// sidecar binds only IP literals (docs/xds.md); a sidecar's metadata is its own
// claim, so a host name there is refused here rather than NACKed there.
func listenAddress(hostport string) (*corev3.Address, error) {
	addr, err := socketAddress(hostport)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(addr.GetSocketAddress().GetAddress()); err != nil {
		return nil, fmt.Errorf("address %q: a listener binds an IP address, not a host name", hostport)
	}
	return addr, nil
}

// dedupe keeps the first of the resources of a type that share a name, and the first
// of the listeners that share an address: a sidecar NACKs the whole response
// otherwise. Only node metadata that lists a port or an address twice gets here.
func (g *generator) dedupe() {
	addrs := map[string]string{}
	g.res.Listeners = slices.DeleteFunc(g.res.Listeners, func(l *listenerv3.Listener) bool {
		sa := l.GetAddress().GetSocketAddress()
		addr := net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
		if other, ok := addrs[addr]; ok && other != l.GetName() {
			g.errorf("listener %s: %s is also the address of listener %s; skipped", l.GetName(), addr, other)
			return true
		}
		addrs[addr] = l.GetName()
		return false
	})
	g.res.Listeners = firstByName(g, "listener", g.res.Listeners, (*listenerv3.Listener).GetName)
	g.res.Routes = firstByName(g, "route configuration", g.res.Routes, (*routev3.RouteConfiguration).GetName)
	g.res.Clusters = firstByName(g, "cluster", g.res.Clusters, (*clusterv3.Cluster).GetName)
	g.res.Endpoints = firstByName(g, "load assignment", g.res.Endpoints, (*endpointv3.ClusterLoadAssignment).GetClusterName)
}

func firstByName[T any](g *generator, kind string, list []T, name func(T) string) []T {
	seen := make(map[string]bool, len(list))
	return slices.DeleteFunc(list, func(r T) bool {
		n := name(r)
		if seen[n] {
			g.errorf("%s %s: generated twice (the metadata lists a port twice); the first is kept", kind, n)
			return true
		}
		seen[n] = true
		return false
	})
}

// socketAddress parses host:port into an Envoy address.
func socketAddress(hostport string) (*corev3.Address, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("address %q: port must be 1..65535", hostport)
	}
	if host == "" {
		return nil, fmt.Errorf("address %q: host is empty", hostport)
	}
	if strings.ContainsAny(host, " :/[]") || strings.IndexFunc(host, unicode.IsControl) >= 0 {
		return nil, fmt.Errorf("address %q: host is neither an IP address nor a host name", hostport)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}, nil
}

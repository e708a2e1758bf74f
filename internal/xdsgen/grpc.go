package xdsgen

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/names"
)

// Proxyless gRPC (docs/proxyless.md, docs/xds.md "Proxyless gRPC"): a gRPC
// application with grpc-go's own xDS client gets the shapes grpc-go implements,
// built from the same IR and with the same route and cluster translation as a
// sidecar's, then narrowed to what grpc-go applies:
//   - per HTTP-family service port, a route configuration named <fqdn>:<port> and an
//     API listener per host name a client dials (the virtual host's domains), with
//     the fault and router filters;
//   - the clusters and endpoints the routes reach, mTLS through the bootstrap's
//     certificate provider (names.GRPCCertProvider) instead of SDS;
//   - per workload port, the listener an xDS-enabled gRPC server asks for
//     (names.GRPCServerListener), with mTLS and RBAC.
// What grpc-go does not implement is left out and reported (an error of
// GenerateGRPC), never sent: grpc-go NACKs some of it and ignores the rest.

// grpcFaultFilter and grpcRouterFilter are the HTTP filters of a proxyless client.
var (
	grpcFaultFilter = &hcmv3.HttpFilter{Name: wellknown.Fault,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}}
	grpcRouterFilter = &hcmv3.HttpFilter{Name: wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}
)

// grpcRetryOn are the retry conditions grpc-go implements (gRPC status names).
var grpcRetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// GenerateGRPC returns the resources of a proxyless gRPC application in mesh. As
// with Generate, a part that cannot be generated (or that grpc-go does not
// implement) is left out and the error says what and why; Resources is never nil.
func GenerateGRPC(mesh *model.Mesh, proxy *model.Proxy) (*Resources, error) {
	g := &generator{mesh: mesh, proxy: proxy, res: &Resources{},
		clusters: make(map[string]bool), upstreamBinds: make(map[string]string), grpc: true}
	g.grpcClient()
	g.grpcServer()
	// grpc-go balances over localities by weight, drops a locality of weight 0 and
	// rejects one without an ID: the mesh has one locality, empty, of weight 1.
	for _, cla := range g.res.Endpoints {
		for _, l := range cla.Endpoints {
			if l.Locality == nil {
				l.Locality = &corev3.Locality{}
			}
			l.LoadBalancingWeight = wrapperspb.UInt32(1)
		}
	}
	g.sort()
	return g.res, errors.Join(g.errs...)
}

// grpcClient emits the API listeners and route configurations of every HTTP-family
// service port, and the clusters their routes reach.
func (g *generator) grpcClient() {
	listeners := map[string]bool{}
	for _, svc := range g.mesh.Services {
		for _, port := range svc.Ports {
			if !model.IsHTTP(port.Protocol) {
				continue
			}
			name := svc.FQDN + ":" + strconv.FormatUint(uint64(port.Number), 10)
			routes := port.RoutesFor(g.proxy)
			if len(routes) == 0 {
				routes = []*model.Route{g.mesh.DefaultRoute(svc, port)}
			}
			vh := &routev3.VirtualHost{Name: name, Domains: domains(svc, port.Number, g.proxy.Namespace)}
			for _, r := range routes {
				vh.Routes = append(vh.Routes, g.grpcRoutes(name, r)...)
			}
			g.res.Routes = append(g.res.Routes, &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}})
			for _, d := range vh.Domains {
				if listeners[d] {
					continue
				}
				listeners[d] = true
				m := rdsHCM(d, name)
				m.HttpFilters = []*hcmv3.HttpFilter{grpcFaultFilter, grpcRouterFilter}
				g.res.Listeners = append(g.res.Listeners, &listenerv3.Listener{
					Name:        d,
					ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(m)},
				})
			}
		}
	}
}

// grpcRoutes translates a route as for a sidecar, then keeps what grpc-go applies:
// matches on path, headers and case; weighted clusters; max_stream_duration for the
// timeout; retries on gRPC status codes; faults; header hash policies.
func (g *generator) grpcRoutes(vhost string, r *model.Route) []*routev3.Route {
	if len(r.Match.QueryParams) > 0 {
		g.errorf("%s (%s): query parameter matches are not implemented by proxyless gRPC; route skipped", r.Source, vhost)
		return nil
	}
	var dropped []string
	drop := func(what string) {
		if !slices.Contains(dropped, what) {
			dropped = append(dropped, what)
		}
	}
	out := g.routes(r)
	for _, rt := range out {
		if rt.RequestHeadersToAdd != nil || rt.RequestHeadersToRemove != nil ||
			rt.ResponseHeadersToAdd != nil || rt.ResponseHeadersToRemove != nil {
			drop("header rewrites")
			rt.RequestHeadersToAdd, rt.RequestHeadersToRemove = nil, nil
			rt.ResponseHeadersToAdd, rt.ResponseHeadersToRemove = nil, nil
		}
		if _, ok := rt.TypedPerFilterConfig[wellknown.CORS]; ok {
			drop("CORS")
			delete(rt.TypedPerFilterConfig, wellknown.CORS)
		}
		if len(rt.TypedPerFilterConfig) == 0 {
			rt.TypedPerFilterConfig = nil
		}
		switch rt.Action.(type) {
		case *routev3.Route_Redirect:
			drop("redirects (its RPCs fail with UNAVAILABLE)")
		case *routev3.Route_DirectResponse:
			drop("direct responses (its RPCs fail with UNAVAILABLE)")
		}
		a := rt.GetRoute()
		if a == nil {
			continue
		}
		if t := a.GetTimeout(); t.AsDuration() > 0 {
			a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: t}
		}
		a.Timeout = nil
		a.RetryPolicy = grpcRetry(a.RetryPolicy)
		if len(a.RequestMirrorPolicies) > 0 {
			drop("mirroring")
			a.RequestMirrorPolicies = nil
		}
		if a.PrefixRewrite != "" || a.RegexRewrite != nil || a.HostRewriteSpecifier != nil {
			drop("rewrites")
			a.PrefixRewrite, a.RegexRewrite, a.HostRewriteSpecifier = "", nil, nil
		}
		a.HashPolicy = slices.DeleteFunc(a.HashPolicy, func(h *routev3.RouteAction_HashPolicy) bool {
			if h.GetHeader() == nil {
				drop("consistent hashing on anything but a header")
				return true
			}
			return false
		})
		for _, cw := range a.GetWeightedClusters().GetClusters() {
			if cw.RequestHeadersToAdd != nil || cw.RequestHeadersToRemove != nil ||
				cw.ResponseHeadersToAdd != nil || cw.ResponseHeadersToRemove != nil {
				drop("header rewrites")
				cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = nil, nil
				cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = nil, nil
			}
		}
	}
	if len(dropped) > 0 {
		g.errorf("%s (%s): proxyless gRPC does not implement %s; ignored", r.Source, vhost, strings.Join(dropped, ", "))
	}
	return out
}

// grpcRetry keeps a retry policy's gRPC status conditions (A44); nil when none
// remains or no retry is allowed. grpc-go has no per-try timeout.
func grpcRetry(rp *routev3.RetryPolicy) *routev3.RetryPolicy {
	if rp == nil || rp.GetNumRetries().GetValue() == 0 {
		return nil
	}
	var on []string
	for _, c := range strings.Split(rp.RetryOn, ",") {
		if c = strings.TrimSpace(c); slices.Contains(grpcRetryOn, c) {
			on = append(on, c)
		}
	}
	if len(on) == 0 {
		return nil
	}
	out := &routev3.RetryPolicy{RetryOn: strings.Join(on, ","), NumRetries: rp.NumRetries}
	if b := rp.GetRetryBackOff(); b.GetBaseInterval().AsDuration() > 0 {
		out.RetryBackOff = b
	}
	return out
}

// grpcCluster narrows a cluster built for a sidecar to what grpc-go implements: EDS
// or LOGICAL_DNS, round robin, ring hash or least request, max_requests, outlier
// detection, and mTLS through the certificate provider.
func (g *generator) grpcCluster(c *clusterv3.Cluster, info model.ClusterInfo) {
	c.TypedExtensionProtocolOptions = nil
	c.CommonLbConfig = nil
	c.ConnectTimeout = nil
	if c.LbPolicy == clusterv3.Cluster_RANDOM {
		g.errorf("cluster %s: proxyless gRPC has no RANDOM load balancer; round robin is used", c.Name)
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	}
	if c.GetType() == clusterv3.Cluster_STRICT_DNS {
		// grpc-go resolves one host name per cluster (LOGICAL_DNS).
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		if eps := c.GetLoadAssignment().GetEndpoints(); len(eps) > 0 && len(eps[0].LbEndpoints) > 1 {
			g.errorf("cluster %s: proxyless gRPC resolves one host name per cluster; only %s is used",
				c.Name, eps[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
			eps[0].LbEndpoints = eps[0].LbEndpoints[:1]
		}
	}
	if od := c.OutlierDetection; od != nil && (od.Consecutive_5Xx != nil || od.ConsecutiveGatewayFailure != nil) {
		g.errorf("cluster %s: proxyless gRPC ejects endpoints by success rate and failure percentage, not by consecutive errors; "+
			"the consecutive error counts are ignored", c.Name)
	}
	if info.TLS == nil {
		return
	}
	switch {
	case info.TLS.Mode != model.TLSIstioMutual:
		g.errorf("cluster %s: TLS mode %s (certificate files) is not implemented by proxyless gRPC; plaintext is used", c.Name, info.TLS.Mode)
	case !g.proxy.MTLS:
		if !info.TLS.Auto {
			g.errorf("cluster %s: the DestinationRule asks for ISTIO_MUTUAL, but this application has no certificate (no certificate provider in its bootstrap); plaintext is used", c.Name)
		}
	default:
		c.TransportSocket = tlsTransport(&corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
			CommonTlsContext: grpcTLSContext(spiffeMatchers(info.TLS.Identities, info.TLS.TrustDomain)),
		})})
	}
}

// grpcTLSContext is the TLS context of a proxyless application: its certificate and
// the trust bundle from the certificate provider, and on the client side the peer
// identities accepted (grpc-go matches match_subject_alt_names against every SAN).
func grpcTLSContext(sans []*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext {
	provider := &tlsv3.CertificateProviderPluginInstance{InstanceName: names.GRPCCertProvider, CertificateName: "default"}
	vc := &tlsv3.CertificateValidationContext{CaCertificateProviderInstance: provider}
	for _, m := range sans {
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, m.Matcher)
	}
	return &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: provider,
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
	}
}

// grpcServer emits, per workload port, the listener the application's xDS-enabled
// gRPC server asks for: one filter chain, mutual TLS unless the port's mode is
// DISABLE (grpc-go cannot tell TLS from plaintext on one port, so PERMISSIVE is
// served as mutual TLS), and the authorization policies as RBAC filters.
func (g *generator) grpcServer() {
	for _, p := range g.proxy.Inbound {
		if !model.IsHTTP(p.Protocol) {
			g.errorf("port %d: protocol %s: a proxyless gRPC server serves gRPC only; no listener", p.Port, p.Protocol)
			continue
		}
		addr, err := socketAddress(p.Inbound)
		if err != nil {
			g.errorf("port %d: %v", p.Port, err)
			continue
		}
		name := names.GRPCServerListener(p.Inbound)
		m := &hcmv3.HttpConnectionManager{
			StatPrefix: name,
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
				Name: name,
				VirtualHosts: []*routev3.VirtualHost{{
					Name:    name,
					Domains: []string{"*"},
					Routes: []*routev3.Route{{
						Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
						Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
					}},
				}},
			}},
			HttpFilters: append(g.grpcAuthzFilters(p), grpcRouterFilter),
		}
		chain := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
			Name:       wellknown.HTTPConnectionManager,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)},
		}}}
		if g.proxy.MTLS && g.mesh.MTLSMode(g.proxy.Namespace, g.proxy.Labels, p.Port) != model.MTLSDisable {
			chain.TransportSocket = tlsTransport(&corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{
				CommonTlsContext:         grpcTLSContext(nil),
				RequireClientCertificate: wrapperspb.Bool(true),
			})})
		}
		g.res.Listeners = append(g.res.Listeners, &listenerv3.Listener{
			Name:             name,
			Address:          addr,
			TrafficDirection: corev3.TrafficDirection_INBOUND,
			FilterChains:     []*listenerv3.FilterChain{chain},
		})
	}
}

// grpcAuthzFilters are the RBAC filters of a proxyless server port (A41): DENY, then
// ALLOW. grpc-go has no JWT authentication nor external authorization: a port that
// such policies apply to denies every request (fail closed). AUDIT is not enforced
// and is left out.
func (g *generator) grpcAuthzFilters(p model.InboundPort) []*hcmv3.HttpFilter {
	a := g.authzFor(p)
	if len(a.jwt) > 0 || len(a.custom) > 0 {
		g.errorf("port %d: RequestAuthentication and CUSTOM authorization are not implemented by proxyless gRPC servers; every request is denied", p.Port)
		return []*hcmv3.HttpFilter{rbacFilter(rbacv3.RBAC_ALLOW, nil)}
	}
	if len(a.audit) > 0 {
		g.errorf("port %d: AUDIT authorization policies are not implemented by proxyless gRPC servers; ignored", p.Port)
	}
	var out []*hcmv3.HttpFilter
	if pols := rbacPolicies(a.deny, p.Port, true, ""); len(pols) > 0 {
		out = append(out, rbacFilter(rbacv3.RBAC_DENY, pols))
	}
	if len(a.allow) > 0 {
		out = append(out, rbacFilter(rbacv3.RBAC_ALLOW, rbacPolicies(a.allow, p.Port, true, "")))
	}
	return out
}

// rbacFilter is an HTTP RBAC filter enforcing rules, named after its action (grpc-go
// NACKs two filters of one name).
func rbacFilter(action rbacv3.RBAC_Action, pols map[string]*rbacv3.Policy) *hcmv3.HttpFilter {
	name := HTTPRBACFilter + "." + strings.ToLower(action.String())
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{
		TypedConfig: mustAny(&httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: action, Policies: pols}})}}
}

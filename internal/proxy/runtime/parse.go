package runtime

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"trellis.dev/trellis/internal/proxy/authz"
)

// DefaultConnectTimeout is a cluster's connect timeout when it sets none (Envoy's
// default).
const DefaultConnectTimeout = 5 * time.Second

// The parse functions check one resource against the contract and return what the
// table needs from it. Errors are *fieldError; the exported entry points turn them into
// *Error naming the resource.

type listenerSpec struct {
	name string
	addr string // host:port, as net.Listen takes it
	// chains are the filter chains, in order; inspect is set when a chain matches a
	// transport protocol, so connections are peeked.
	chains  []*chainSpec
	inspect bool
	// detect is set when the listener has the HTTP inspector (protocol.go).
	detect bool
	// useOriginalDst hands connections to the listener at their original destination;
	// origDst is set when the listener has the original_dst listener filter or
	// use_original_dst (its ORIGINAL_DST clusters connect there); virtual is set by
	// bind_to_port false (transparent.go).
	useOriginalDst, origDst, virtual bool
	// dns is the DNS table the listener carries (dns.go).
	dns map[string][]netip.Addr
}

type chainSpec struct {
	name  string
	proto string // transport_protocol matched: "tls", "raw_buffer", or "" for any
	// apps are the application_protocols matched (protocol.go); empty for any.
	apps []string
	http *httpSpec
	tcp  *tcpSpec
	tls  *DownstreamTLS
}

type httpSpec struct {
	statPrefix string
	rds        string     // route configuration name, when routes come over RDS
	inline     *routeSpec // inline route configuration otherwise
	xfcc       XFCC
	// rateLimit is the ratelimit filter (ratelimit.go); nil for none.
	rateLimit *GlobalRateLimit
	// authz are the authorization filters and normalize the path normalization
	// (parse_authz.go).
	authz     []AuthzFilter
	normalize authz.PathOptions
}

type tcpSpec struct {
	statPrefix  string
	clusters    []WeightedCluster // names only, resolved by Build
	idleTimeout time.Duration
	authz       []AuthzFilter // the network filters before it (parse_authz.go)
}

type clusterSpec struct {
	eds     bool
	edsName string   // the ClusterLoadAssignment to use, for EDS clusters
	static  []string // endpoint addresses, for STATIC and STRICT_DNS clusters
	cluster Cluster  // the configuration, without endpoints
}

func parseListener(l *listenerv3.Listener) (*listenerSpec, error) {
	if err := checkFields(l.ProtoReflect(), listenerFields); err != nil {
		return nil, err
	}
	addr, err := socketAddress(l.GetAddress().GetSocketAddress(), true)
	if err != nil {
		return nil, prefixed("address.socket_address", err)
	}
	spec := &listenerSpec{name: l.GetName(), addr: addr}
	if err := parseTransparent(l, spec); err != nil {
		return nil, err
	}
	if spec.dns, err = parseDNSTable(l); err != nil {
		return nil, err
	}
	chains := l.GetFilterChains()
	if len(chains) == 0 {
		return nil, fieldErrorf("filter_chains", "must hold a filter chain")
	}
	if len(chains) > maxChains {
		return nil, fieldErrorf("filter_chains", "must hold at most %d filter chains (one per transport protocol and application protocols), not %d", maxChains, len(chains))
	}
	seen := map[string]int{}
	for i, fc := range chains {
		at := fmt.Sprintf("filter_chains[%d]", i)
		cs, err := parseChain(fc)
		if err != nil {
			return nil, prefixed(at, err)
		}
		if j, dup := seen[cs.matchKey()]; dup {
			return nil, fieldErrorf(at+".filter_chain_match", "matches the same connections as filter_chains[%d]", j)
		}
		seen[cs.matchKey()] = i
		spec.inspect = spec.inspect || cs.proto != ""
		spec.chains = append(spec.chains, cs)
	}
	for i, lf := range l.GetListenerFilters() {
		at := fmt.Sprintf("listener_filters[%d]", i)
		if lf.GetName() == HTTPInspectorFilter {
			if err := parseHTTPInspector(lf); err != nil {
				return nil, prefixed(at, err)
			}
			spec.detect = true
			continue
		}
		if lf.GetName() == OriginalDstFilter {
			if err := parseOriginalDstFilter(lf); err != nil {
				return nil, prefixed(at, err)
			}
			spec.origDst = true
			continue
		}
		if lf.GetName() != TLSInspectorFilter {
			return nil, fieldErrorf(at+".name", "listener filter %q is not supported (want %s, %s or %s)", lf.GetName(), TLSInspectorFilter, HTTPInspectorFilter, OriginalDstFilter)
		}
		if tc := lf.GetTypedConfig(); tc != nil {
			cfg := &tlsinspectorv3.TlsInspector{}
			if err := unpack(tc, cfg); err != nil {
				return nil, prefixed(at+".typed_config", err)
			}
			if err := checkFields(cfg.ProtoReflect(), fields()); err != nil {
				return nil, prefixed(at+".typed_config", err)
			}
		}
	}
	if err := checkDetection(chains, spec); err != nil {
		return nil, err
	}
	return pgvOr(l, spec)
}

// parseChain reads one filter chain: which connections it takes, how it terminates
// TLS, and its one network filter.
func parseChain(fc *listenerv3.FilterChain) (*chainSpec, error) {
	cs := &chainSpec{name: fc.GetName(), proto: fc.GetFilterChainMatch().GetTransportProtocol()}
	switch cs.proto {
	case "", TransportTLS, TransportRaw:
	default:
		return nil, fieldErrorf("filter_chain_match.transport_protocol", "%q is not supported (want %q or %q)", cs.proto, TransportTLS, TransportRaw)
	}
	apps, err := parseApplicationProtocols(fc.GetFilterChainMatch().GetApplicationProtocols())
	if err != nil {
		return nil, prefixed("filter_chain_match.application_protocols", err)
	}
	cs.apps = apps
	if ts := fc.GetTransportSocket(); ts != nil {
		var err error
		if cs.tls, err = parseDownstreamTLS(ts); err != nil {
			return nil, prefixed("transport_socket", err)
		}
	} else if cs.proto == TransportTLS {
		return nil, fieldErrorf("transport_socket", "is required on a chain matching %q (TLS passthrough is not supported)", TransportTLS)
	}
	filters := fc.GetFilters()
	if len(filters) == 0 {
		return nil, fieldErrorf("filters", "must hold a network filter")
	}
	// Authorization filters (parse_authz.go) may come before a TCP proxy.
	last := len(filters) - 1
	netAuthz, err := parseNetworkAuthz(filters[:last])
	if err != nil {
		return nil, err
	}
	at := fmt.Sprintf("filters[%d]", last)
	f := filters[last]
	switch f.GetName() {
	case HTTPConnectionManagerFilter:
		hcm := &hcmv3.HttpConnectionManager{}
		if err := unpack(f.GetTypedConfig(), hcm); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		if cs.http, err = parseHCM(hcm); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
	case TCPProxyFilter:
		tp := &tcpv3.TcpProxy{}
		if err := unpack(f.GetTypedConfig(), tp); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		if cs.tcp, err = parseTCPProxy(tp); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		cs.tcp.authz = netAuthz
	default:
		return nil, fieldErrorf(at+".name", "filter %q is not supported (want %s or %s)",
			f.GetName(), HTTPConnectionManagerFilter, TCPProxyFilter)
	}
	if len(netAuthz) > 0 && cs.tcp == nil {
		return nil, fieldErrorf("filters", "network authorization filters are only supported before %s", TCPProxyFilter)
	}
	return cs, nil
}

func parseHCM(h *hcmv3.HttpConnectionManager) (*httpSpec, error) {
	if err := checkFields(h.ProtoReflect(), hcmFields); err != nil {
		return nil, err
	}
	if h.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		return nil, fieldErrorf("codec_type", "%s is not supported (want AUTO)", h.GetCodecType())
	}
	spec := &httpSpec{statPrefix: h.GetStatPrefix()}
	switch h.GetForwardClientCertDetails() {
	case hcmv3.HttpConnectionManager_SANITIZE:
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		spec.xfcc = XFCC{Set: true, URI: h.GetSetCurrentClientCertDetails().GetUri()}
	default:
		return nil, fieldErrorf("forward_client_cert_details", "%s is not supported (want SANITIZE or SANITIZE_SET)", h.GetForwardClientCertDetails())
	}
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if err := checkADS(rs.Rds.GetConfigSource()); err != nil {
			return nil, prefixed("rds.config_source", err)
		}
		spec.rds = rs.Rds.GetRouteConfigName()
		if spec.rds == "" {
			return nil, fieldErrorf("rds.route_config_name", "is required")
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		rt, err := parseRouteConfig(rs.RouteConfig)
		if err != nil {
			return nil, prefixed("route_config", err)
		}
		spec.inline = rt
	default:
		return nil, fieldErrorf("route_specifier", "one of rds or route_config is required")
	}
	if err := checkHTTPFilters(h.GetHttpFilters()); err != nil {
		return nil, err
	}
	if err := parseRateLimitFilters(h.GetHttpFilters(), spec); err != nil {
		return nil, err
	}
	var err error
	if spec.normalize, err = parseNormalization(h); err != nil {
		return nil, err
	}
	if spec.authz, err = parseHTTPAuthz(h.GetHttpFilters()); err != nil {
		return nil, err
	}
	return pgvOr(h, spec)
}

// httpFilterOrder is the order of the HTTP filters the sidecar implements: fault and
// CORS are optional (configured per route), the router is last and required.
var httpFilterOrder = []struct {
	name     string
	config   func() proto.Message
	required bool
	// parsed: the filter's config is checked elsewhere (ratelimit.go), not required
	// to be empty.
	parsed bool
}{
	{LocalRateLimitFilter, func() proto.Message { return &localrlv3.LocalRateLimit{} }, false, true},
	{RateLimitFilter, func() proto.Message { return &rlv3.RateLimit{} }, false, true},
	{FaultFilter, func() proto.Message { return &faultv3.HTTPFault{} }, false, false},
	{CORSFilter, func() proto.Message { return &corsv3.Cors{} }, false, false},
	{RouterFilter, func() proto.Message { return &routerv3.Router{} }, true, false},
}

func checkHTTPFilters(filters []*hcmv3.HttpFilter) error {
	next := 0
	for i, f := range filters {
		at := fmt.Sprintf("http_filters[%d]", i)
		if isAuthzHTTPFilter(f.GetName()) {
			continue // parse_authz.go
		}
		k := next
		for k < len(httpFilterOrder) && httpFilterOrder[k].name != f.GetName() {
			k++
		}
		if k == len(httpFilterOrder) {
			return fieldErrorf(at+".name", "filter %q is not supported here (want, in order, %s, %s and %s, the router last)",
				f.GetName(), FaultFilter, CORSFilter, RouterFilter)
		}
		next = k + 1
		if tc := f.GetTypedConfig(); tc != nil {
			cfg := httpFilterOrder[k].config()
			if err := unpack(tc, cfg); err != nil {
				return prefixed(at+".typed_config", err)
			}
			allowed := fields()
			if httpFilterOrder[k].parsed {
				allowed = rateLimitFilterFields
			}
			if err := checkFields(cfg.ProtoReflect(), allowed); err != nil {
				return prefixed(at+".typed_config", fieldErrorf("", "must be empty (the filter is configured per route): %v", err))
			}
		}
	}
	if len(filters) == 0 || filters[len(filters)-1].GetName() != RouterFilter {
		return fieldErrorf("http_filters", "must end with the router (%s)", RouterFilter)
	}
	return nil
}

// DefaultTCPIdleTimeout is a TCP proxy's idle timeout when it sets none (Envoy's).
const DefaultTCPIdleTimeout = time.Hour

func parseTCPProxy(tp *tcpv3.TcpProxy) (*tcpSpec, error) {
	if err := checkFields(tp.ProtoReflect(), tcpProxyFields); err != nil {
		return nil, err
	}
	spec := &tcpSpec{statPrefix: tp.GetStatPrefix(), idleTimeout: DefaultTCPIdleTimeout}
	switch cs := tp.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if cs.Cluster == "" {
			return nil, fieldErrorf("cluster", "is required")
		}
		spec.clusters = []WeightedCluster{{name: cs.Cluster, Weight: 1}}
	case *tcpv3.TcpProxy_WeightedClusters:
		for i, wc := range cs.WeightedClusters.GetClusters() {
			if wc.GetName() == "" {
				return nil, fieldErrorf(fmt.Sprintf("weighted_clusters.clusters[%d].name", i), "is required")
			}
			spec.clusters = append(spec.clusters, WeightedCluster{name: wc.GetName(), Weight: wc.GetWeight()})
		}
		if totalWeight(spec.clusters) == 0 {
			return nil, fieldErrorf("weighted_clusters", "the weights add up to 0")
		}
	default:
		return nil, fieldErrorf("cluster", "one of cluster or weighted_clusters is required")
	}
	if it := tp.GetIdleTimeout(); it != nil {
		var err error
		if spec.idleTimeout, err = duration(it, "idle_timeout"); err != nil {
			return nil, err
		}
	}
	return pgvOr(tp, spec)
}

func parseLoadAssignment(cla *endpointv3.ClusterLoadAssignment) ([]string, error) {
	if err := checkFields(cla.ProtoReflect(), loadAssignmentFields); err != nil {
		return nil, err
	}
	var addrs []string
	for i, group := range cla.GetEndpoints() {
		for j, lbe := range group.GetLbEndpoints() {
			addr, err := socketAddress(lbe.GetEndpoint().GetAddress().GetSocketAddress(), false)
			if err != nil {
				return nil, prefixed(fmt.Sprintf("endpoints[%d].lb_endpoints[%d].endpoint.address.socket_address", i, j), err)
			}
			addrs = append(addrs, addr)
			if err := checkPeerMetadata(lbe.GetMetadata()); err != nil {
				return nil, prefixed(fmt.Sprintf("endpoints[%d].lb_endpoints[%d].metadata", i, j), err)
			}
		}
	}
	return pgvOr(cla, addrs)
}

// socketAddress returns host:port. A listener's address must be an IP literal; an
// endpoint's may also be a host name.
func socketAddress(sa *corev3.SocketAddress, ipOnly bool) (string, error) {
	if sa == nil {
		return "", fieldErrorf("", "is required")
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return "", fieldErrorf("port_value", "%d is not a port (1-65535)", port)
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err == nil {
		return netip.AddrPortFrom(ip, uint16(port)).String(), nil
	}
	host := sa.GetAddress()
	if ipOnly || host == "" || strings.ContainsAny(host, " :/[]") {
		return "", fieldErrorf("address", "%q is not an IP address", host)
	}
	return fmt.Sprintf("%s:%d", host, port), nil
}

// checkADS accepts a config source that points at the ADS stream.
func checkADS(cs *corev3.ConfigSource) error {
	if cs.GetAds() == nil {
		return fieldErrorf("ads", "is required (only ADS config sources are supported)")
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		return fieldErrorf("resource_api_version", "%s is not supported (want V3)", v)
	}
	return nil
}

// unpack decodes an Any holding exactly the type of m.
func unpack(a *anypb.Any, m proto.Message) error {
	if a == nil {
		return fieldErrorf("", "is required")
	}
	want := "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
	if a.GetTypeUrl() != want {
		return fieldErrorf("", "type %q is not supported (want %q)", a.GetTypeUrl(), want)
	}
	if err := a.UnmarshalTo(m); err != nil {
		return fieldErrorf("", "decoding %s: %v", want, err)
	}
	return nil
}

// pgvOr returns v, or the error of the constraints generated from the Envoy protos.
// It runs after the sidecar's own checks, whose messages are clearer.
func pgvOr[T any](m proto.Message, v T) (T, error) {
	if err := pgv(m); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// pgv runs the constraints generated from the Envoy protos (protoc-gen-validate).
func pgv(m proto.Message) error {
	v, ok := m.(interface{ Validate() error })
	if !ok {
		return nil
	}
	if err := v.Validate(); err != nil {
		return fieldErrorf("", "%v", err)
	}
	return nil
}

func fieldErrorf(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// prefixed puts the path of an enclosing field in front of a fieldError's field.
func prefixed(prefix string, err error) error {
	fe, ok := err.(*fieldError)
	if !ok {
		return err
	}
	field := prefix
	switch {
	case fe.field == "":
	case strings.HasPrefix(fe.field, "["):
		field += fe.field
	default:
		field += "." + fe.field
	}
	return &fieldError{field: field, msg: fe.msg}
}

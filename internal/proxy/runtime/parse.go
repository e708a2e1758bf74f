package runtime

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
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
	http *httpSpec
	tcp  *tcpSpec
}

type httpSpec struct {
	statPrefix string
	rds        string     // route configuration name, when routes come over RDS
	inline     *routeSpec // inline route configuration otherwise
}

type tcpSpec struct {
	statPrefix string
	cluster    string
}

type routeSpec struct {
	name   string
	vhosts []vhostSpec
}

type vhostSpec struct {
	name    string
	domains []string // lower case
	routes  []routeEntrySpec
}

type routeEntrySpec struct {
	prefix  string
	cluster string
}

type clusterSpec struct {
	name    string
	eds     bool
	edsName string   // the ClusterLoadAssignment to use, for EDS clusters
	static  []string // endpoint addresses, for STATIC clusters
	timeout time.Duration
	http2   bool
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
	if n := len(l.GetFilterChains()); n != 1 {
		return nil, fieldErrorf("filter_chains", "must hold exactly one filter chain, not %d", n)
	}
	filters := l.GetFilterChains()[0].GetFilters()
	if n := len(filters); n != 1 {
		return nil, fieldErrorf("filter_chains[0].filters", "must hold exactly one network filter, not %d", n)
	}
	const at = "filter_chains[0].filters[0]"
	f := filters[0]
	switch f.GetName() {
	case HTTPConnectionManagerFilter:
		hcm := &hcmv3.HttpConnectionManager{}
		if err := unpack(f.GetTypedConfig(), hcm); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		if spec.http, err = parseHCM(hcm); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
	case TCPProxyFilter:
		tp := &tcpv3.TcpProxy{}
		if err := unpack(f.GetTypedConfig(), tp); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
		if spec.tcp, err = parseTCPProxy(tp); err != nil {
			return nil, prefixed(at+".typed_config", err)
		}
	default:
		return nil, fieldErrorf(at+".name", "filter %q is not supported (want %s or %s)",
			f.GetName(), HTTPConnectionManagerFilter, TCPProxyFilter)
	}
	return pgvOr(l, spec)
}

func parseHCM(h *hcmv3.HttpConnectionManager) (*httpSpec, error) {
	if err := checkFields(h.ProtoReflect(), hcmFields); err != nil {
		return nil, err
	}
	if h.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		return nil, fieldErrorf("codec_type", "%s is not supported (want AUTO)", h.GetCodecType())
	}
	spec := &httpSpec{statPrefix: h.GetStatPrefix()}
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
	filters := h.GetHttpFilters()
	if len(filters) != 1 || filters[0].GetName() != RouterFilter {
		return nil, fieldErrorf("http_filters", "must hold exactly the router (%s)", RouterFilter)
	}
	if tc := filters[0].GetTypedConfig(); tc != nil {
		if err := unpack(tc, &routerv3.Router{}); err != nil {
			return nil, prefixed("http_filters[0].typed_config", err)
		}
	}
	return pgvOr(h, spec)
}

func parseTCPProxy(tp *tcpv3.TcpProxy) (*tcpSpec, error) {
	if err := checkFields(tp.ProtoReflect(), tcpProxyFields); err != nil {
		return nil, err
	}
	if tp.GetCluster() == "" {
		return nil, fieldErrorf("cluster", "is required")
	}
	return pgvOr(tp, &tcpSpec{statPrefix: tp.GetStatPrefix(), cluster: tp.GetCluster()})
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
			rat := fmt.Sprintf("%s.routes[%d]", at, j)
			prefix, ok := r.GetMatch().GetPathSpecifier().(*routev3.RouteMatch_Prefix)
			if !ok {
				return nil, fieldErrorf(rat+".match", "a prefix is required")
			}
			action, ok := r.GetAction().(*routev3.Route_Route)
			if !ok || action.Route.GetCluster() == "" {
				return nil, fieldErrorf(rat+".route.cluster", "is required")
			}
			v.routes = append(v.routes, routeEntrySpec{prefix: prefix.Prefix, cluster: action.Route.GetCluster()})
		}
		spec.vhosts = append(spec.vhosts, v)
	}
	return pgvOr(rc, spec)
}

func parseCluster(c *clusterv3.Cluster) (*clusterSpec, error) {
	if err := checkFields(c.ProtoReflect(), clusterFields); err != nil {
		return nil, err
	}
	spec := &clusterSpec{name: c.GetName(), timeout: DefaultConnectTimeout}
	if ct := c.GetConnectTimeout(); ct != nil {
		spec.timeout = ct.AsDuration()
		if spec.timeout <= 0 {
			return nil, fieldErrorf("connect_timeout", "must be positive")
		}
	}
	if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
		return nil, fieldErrorf("lb_policy", "%s is not supported (want ROUND_ROBIN)", c.GetLbPolicy())
	}
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		if c.GetLoadAssignment() == nil {
			return nil, fieldErrorf("load_assignment", "is required for a STATIC cluster")
		}
		addrs, err := parseLoadAssignment(c.GetLoadAssignment())
		if err != nil {
			return nil, prefixed("load_assignment", err)
		}
		spec.static = addrs
	case clusterv3.Cluster_EDS:
		if c.GetLoadAssignment() != nil {
			return nil, fieldErrorf("load_assignment", "is not used by an EDS cluster")
		}
		if err := checkADS(c.GetEdsClusterConfig().GetEdsConfig()); err != nil {
			return nil, prefixed("eds_cluster_config.eds_config", err)
		}
		spec.eds = true
		spec.edsName = c.GetEdsClusterConfig().GetServiceName()
		if spec.edsName == "" {
			spec.edsName = c.GetName()
		}
	default:
		return nil, fieldErrorf("type", "%s is not supported (want STATIC or EDS)", c.GetType())
	}
	for key, opts := range c.GetTypedExtensionProtocolOptions() {
		at := fmt.Sprintf("typed_extension_protocol_options[%q]", key)
		if key != HTTPProtocolOptionsKey {
			return nil, fieldErrorf(at, "is not supported (want %s)", HTTPProtocolOptionsKey)
		}
		po := &httpv3.HttpProtocolOptions{}
		if err := unpack(opts, po); err != nil {
			return nil, prefixed(at, err)
		}
		if err := checkFields(po.ProtoReflect(), httpProtocolOptionsFields); err != nil {
			return nil, prefixed(at, err)
		}
		switch po.GetExplicitHttpConfig().GetProtocolConfig().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions:
			spec.http2 = true
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions:
		default:
			return nil, fieldErrorf(at+".explicit_http_config", "one of http_protocol_options or http2_protocol_options is required")
		}
	}
	return pgvOr(c, spec)
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

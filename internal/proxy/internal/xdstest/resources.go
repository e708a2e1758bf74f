package xdstest

import (
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SocketAddress splits host:port into an Envoy address; it panics on a malformed one
// (test input).
func SocketAddress(hostport string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		panic(err)
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil {
		panic(err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
	}}}
}

// MustAny packs m; it panics on failure (test input).
func MustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func listener(name, addr, filter string, cfg proto.Message) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    name,
		Address: SocketAddress(addr),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       filter,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: MustAny(cfg)},
		}}}},
	}
}

// HCM returns an HTTP connection manager with the router; routes from RDS when rc
// is nil.
func HCM(statPrefix, rds string, rc *routev3.RouteConfiguration) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: MustAny(&routerv3.Router{})},
		}},
	}
	if rc != nil {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}}
	}
	return h
}

// HTTPListener is an HTTP listener whose routes come over RDS.
func HTTPListener(name, addr, routeName string) *listenerv3.Listener {
	return listener(name, addr, "envoy.filters.network.http_connection_manager", HCM(name, routeName, nil))
}

// InlineHTTPListener is an HTTP listener with an inline route configuration.
func InlineHTTPListener(name, addr string, rc *routev3.RouteConfiguration) *listenerv3.Listener {
	return listener(name, addr, "envoy.filters.network.http_connection_manager", HCM(name, "", rc))
}

// TCPListener is a TCP proxy listener.
func TCPListener(name, addr, cluster string) *listenerv3.Listener {
	return listener(name, addr, "envoy.filters.network.tcp_proxy", &tcpv3.TcpProxy{
		StatPrefix:       name,
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster},
	})
}

// RouteConfig is a route configuration of virtual hosts.
func RouteConfig(name string, vhosts ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}

// VirtualHost routes every path of its domains to cluster.
func VirtualHost(name string, domains []string, cluster string) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}
}

func cluster(name string, http2 bool) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(time.Second),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	if http2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": MustAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	return c
}

// EDSCluster is a cluster whose endpoints come over EDS; http2 selects h2c upstreams.
func EDSCluster(name string, http2 bool) *clusterv3.Cluster {
	c := cluster(name, http2)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads(), ServiceName: name}
	return c
}

// StaticCluster is a cluster with inline endpoints.
func StaticCluster(name string, http2 bool, addrs ...string) *clusterv3.Cluster {
	c := cluster(name, http2)
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	c.LoadAssignment = Assignment(name, addrs...)
	return c
}

// Assignment is a ClusterLoadAssignment of one locality holding addrs.
func Assignment(cluster string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	group := &endpointv3.LocalityLbEndpoints{}
	for _, a := range addrs {
		group.LbEndpoints = append(group.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: SocketAddress(a)}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{group}}
}

// TrafficHTTPListener is an HTTP listener whose routes come over RDS, with the HTTP
// filters configured per route (fault, CORS) before the router, as the control plane
// emits for traffic management.
func TrafficHTTPListener(name, addr, routeName string) *listenerv3.Listener {
	h := HCM(name, routeName, nil)
	h.HttpFilters = append([]*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: MustAny(&faultv3.HTTPFault{})}},
		{Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: MustAny(&corsv3.Cors{})}},
	}, h.HttpFilters...)
	return listener(name, addr, "envoy.filters.network.http_connection_manager", h)
}

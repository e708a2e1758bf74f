package runtime

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

func one(m proto.Message) map[string]proto.Message {
	return map[string]proto.Message{ResourceName(m): m}
}

func TestValidate(t *testing.T) {
	withHCM := func(mut func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
		h := xdstest.HCM("outbound", "outbound", nil)
		mut(h)
		l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
		l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(h)}
		return l
	}
	tests := []struct {
		name    string
		typeURL string
		res     map[string]proto.Message
		want    string // substring of the error; "" for valid
	}{
		{name: "rds listener", typeURL: ListenerType, res: one(xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound"))},
		{name: "tcp listener", typeURL: ListenerType, res: one(xdstest.TCPListener("upstream|x|9000", "127.0.0.1:19000", "outbound|9000||x"))},
		{name: "inline listener", typeURL: ListenerType, res: one(xdstest.InlineHTTPListener("inbound|80", "127.0.0.1:15006",
			xdstest.RouteConfig("inbound|80", xdstest.VirtualHost("inbound|http|80", []string{"*"}, "inbound|80||"))))},
		{name: "eds cluster", typeURL: ClusterType, res: one(xdstest.EDSCluster("outbound|80||echo", true))},
		{name: "static cluster", typeURL: ClusterType, res: one(xdstest.StaticCluster("inbound|80||", false, "127.0.0.1:8080"))},
		{name: "assignment", typeURL: EndpointType, res: one(xdstest.Assignment("outbound|80||echo", "127.0.0.1:1", "127.0.0.1:2"))},
		{name: "empty assignment", typeURL: EndpointType, res: one(xdstest.Assignment("outbound|80||echo"))},
		{name: "routes", typeURL: RouteType, res: one(xdstest.RouteConfig("outbound",
			xdstest.VirtualHost("echo:80", []string{"echo", "Echo.default:80"}, "outbound|80||echo")))},
		{
			name:    "unknown network filter",
			typeURL: ListenerType,
			res: one(func() proto.Message {
				l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
				l.FilterChains[0].Filters[0].Name = "envoy.filters.network.redis_proxy"
				return l
			}()),
			want: `listener "outbound": filter_chains[0].filters[0].name: filter "envoy.filters.network.redis_proxy" is not supported`,
		},
		{
			name:    "filter typed_config of another type",
			typeURL: ListenerType,
			res: one(func() proto.Message {
				l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
				l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: xdstest.MustAny(&wrapperspb.StringValue{})}
				return l
			}()),
			want: `listener "outbound": filter_chains[0].filters[0].typed_config: type "type.googleapis.com/google.protobuf.StringValue" is not supported`,
		},
		{
			name:    "unsupported listener field",
			typeURL: ListenerType,
			res: one(func() proto.Message {
				l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
				l.Transparent = wrapperspb.Bool(true)
				return l
			}()),
			want: `listener "outbound": transparent: is not supported by the Trellis sidecar`,
		},
		{
			name:    "unsupported hcm field",
			typeURL: ListenerType,
			res:     one(withHCM(func(h *hcmv3.HttpConnectionManager) { h.UseRemoteAddress = wrapperspb.Bool(true) })),
			want:    `listener "outbound": filter_chains[0].filters[0].typed_config.use_remote_address: is not supported`,
		},
		{
			name:    "missing route config name",
			typeURL: ListenerType,
			res:     one(withHCM(func(h *hcmv3.HttpConnectionManager) { h.GetRds().RouteConfigName = "" })),
			want:    `listener "outbound": filter_chains[0].filters[0].typed_config.rds.route_config_name: is required`,
		},
		{
			name:    "extra http filter",
			typeURL: ListenerType,
			res:     one(withHCM(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = append(h.HttpFilters, h.HttpFilters[0]) })),
			want:    `typed_config.http_filters[1].name: filter "envoy.filters.http.router" is not supported here`,
		},
		{
			name:    "listener without address",
			typeURL: ListenerType,
			res: one(func() proto.Message {
				l := xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound")
				l.Address = nil
				return l
			}()),
			want: `listener "outbound": address.socket_address: is required`,
		},
		{
			name:    "listener on a host name",
			typeURL: ListenerType,
			res:     one(xdstest.HTTPListener("outbound", "localhost:15001", "outbound")),
			want:    `listener "outbound": address.socket_address.address: "localhost" is not an IP address`,
		},
		{
			name:    "two listeners on one address",
			typeURL: ListenerType,
			res: map[string]proto.Message{
				"a": xdstest.HTTPListener("a", "127.0.0.1:15001", "outbound"),
				"b": xdstest.TCPListener("b", "127.0.0.1:15001", "c"),
			},
			want: `listener "b": address: 127.0.0.1:15001 is also the address of listener "a"`,
		},
		{
			name:    "path separated prefix route",
			typeURL: RouteType,
			res: one(func() proto.Message {
				rc := xdstest.RouteConfig("outbound", xdstest.VirtualHost("echo:80", []string{"echo"}, "c"))
				rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/x"}
				return rc
			}()),
			want: `route configuration "outbound": virtual_hosts[0].routes[0].match.path_separated_prefix: is not supported`,
		},
		{
			name:    "duplicate domain",
			typeURL: RouteType,
			res: one(xdstest.RouteConfig("outbound",
				xdstest.VirtualHost("a", []string{"echo"}, "c"), xdstest.VirtualHost("b", []string{"ECHO"}, "c"))),
			want: `virtual_hosts[1].domains[0]: domain "echo" is also in virtual host "a"`,
		},
		{
			name:    "wildcard suffix domain",
			typeURL: RouteType,
			res:     one(xdstest.RouteConfig("outbound", xdstest.VirtualHost("a", []string{"*.echo"}, "c"))),
			want:    `wildcard domain "*.echo" is not supported`,
		},
		{
			name:    "maglev",
			typeURL: ClusterType,
			res: one(func() proto.Message {
				c := xdstest.EDSCluster("c", false)
				c.LbPolicy = clusterv3.Cluster_MAGLEV
				return c
			}()),
			want: `cluster "c": lb_policy: MAGLEV is not supported (want ROUND_ROBIN, LEAST_REQUEST, RANDOM or RING_HASH)`,
		},
		{
			name:    "logical dns",
			typeURL: ClusterType,
			res: one(func() proto.Message {
				c := xdstest.StaticCluster("c", false, "127.0.0.1:1")
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
				return c
			}()),
			want: `cluster "c": type: LOGICAL_DNS is not supported`,
		},
		{
			name:    "circuit breakers of another priority",
			typeURL: ClusterType,
			res: one(func() proto.Message {
				c := xdstest.EDSCluster("c", false)
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{Priority: corev3.RoutingPriority_HIGH}}}
				return c
			}()),
			want: `cluster "c": circuit_breakers.thresholds[0].priority: is not supported`,
		},
		{
			name:    "negative connect timeout",
			typeURL: ClusterType,
			res: one(func() proto.Message {
				c := xdstest.EDSCluster("c", false)
				c.ConnectTimeout = durationpb.New(-1)
				return c
			}()),
			want: `cluster "c": `,
		},
		{
			name:    "endpoint weight",
			typeURL: EndpointType,
			res: one(func() proto.Message {
				a := xdstest.Assignment("c", "127.0.0.1:1")
				a.Endpoints[0].LbEndpoints[0].LoadBalancingWeight = wrapperspb.UInt32(3)
				return a
			}()),
			want: `cluster load assignment "c": endpoints[0].lb_endpoints[0].load_balancing_weight: is not supported`,
		},
		{
			name:    "endpoint port zero",
			typeURL: EndpointType,
			res: one(func() proto.Message {
				a := xdstest.Assignment("c", "127.0.0.1:1")
				a.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier = nil
				return a
			}()),
			want: `cluster load assignment "c": endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 0 is not a port`,
		},
		{
			name:    "wrong message type",
			typeURL: ClusterType,
			res:     map[string]proto.Message{"c": &endpointv3.ClusterLoadAssignment{ClusterName: "c"}},
			want:    `cluster "c": message envoy.config.endpoint.v3.ClusterLoadAssignment is not a cluster`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.typeURL, tt.res)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate: no error, want one containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate error:\n got %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	full := Resources{
		Listeners: map[string]*listenerv3.Listener{
			"outbound": xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound"),
			"tcp":      xdstest.TCPListener("tcp", "127.0.0.1:19000", "outbound|9000||tcp"),
		},
		Routes: map[string]*routev3.RouteConfiguration{
			"outbound": xdstest.RouteConfig("outbound", xdstest.VirtualHost("echo:80", []string{"echo", "echo:80"}, "outbound|80||echo")),
		},
		Clusters: map[string]*clusterv3.Cluster{
			"outbound|80||echo":  xdstest.EDSCluster("outbound|80||echo", false),
			"outbound|9000||tcp": xdstest.EDSCluster("outbound|9000||tcp", false),
		},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{
			"outbound|80||echo":  xdstest.Assignment("outbound|80||echo", "127.0.0.1:1", "127.0.0.1:2"),
			"outbound|9000||tcp": xdstest.Assignment("outbound|9000||tcp"),
		},
	}
	without := func(mut func(r *Resources)) Resources {
		r := full
		r.Routes = map[string]*routev3.RouteConfiguration{"outbound": full.Routes["outbound"]}
		r.Endpoints = map[string]*endpointv3.ClusterLoadAssignment{}
		for k, v := range full.Endpoints {
			r.Endpoints[k] = v
		}
		mut(&r)
		return r
	}
	tests := []struct {
		name string
		res  Resources
		want string
	}{
		{name: "complete", res: full},
		{name: "no routes", res: without(func(r *Resources) { delete(r.Routes, "outbound") }),
			want: `listener "outbound": route configuration "outbound" not received`},
		{name: "no assignment", res: without(func(r *Resources) { delete(r.Endpoints, "outbound|9000||tcp") }),
			want: `cluster "outbound|9000||tcp": endpoints "outbound|9000||tcp" not received`},
		{name: "route to unknown cluster", res: without(func(r *Resources) {
			r.Routes["outbound"] = xdstest.RouteConfig("outbound", xdstest.VirtualHost("x", []string{"x"}, "nope"))
		}), want: `virtual host "x": cluster "nope" not received`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table, err := Build(tt.res)
			if tt.want != "" {
				if err == nil || !errors.Is(err, ErrUnresolved) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Build error = %v, want ErrUnresolved containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			l := table.ListenerAt("127.0.0.1:15001")
			if l == nil || l.Routes == nil {
				t.Fatalf("no HTTP listener at 127.0.0.1:15001")
			}
			vh := l.Routes.VirtualHost("ECHO:80")
			if vh == nil {
				t.Fatalf("no virtual host for ECHO:80")
			}
			r := vh.Route(httptest.NewRequest("GET", "/anything", nil)).Action.Clusters[0]
			if diff := cmp.Diff([]string{"127.0.0.1:1", "127.0.0.1:2"}, r.Cluster.Endpoints); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if got := l.Routes.VirtualHost("other"); got != nil {
				t.Errorf("VirtualHost(other) = %s, want none", got.Name)
			}
			tcp := table.ListenerAt("127.0.0.1:19000")
			if tcp == nil || tcp.TCP == nil || len(tcp.TCP.Clusters[0].Cluster.Endpoints) != 0 {
				t.Errorf("tcp listener = %+v, want a cluster with no endpoints", tcp)
			}
		})
	}
}

func TestVirtualHostMatch(t *testing.T) {
	rt := &RouteTable{byDomain: map[string]*VirtualHost{"echo": {Name: "echo"}, "echo:8080": {Name: "echo8080"}}}
	withWildcard := &RouteTable{byDomain: rt.byDomain, wildcard: &VirtualHost{Name: "any"}}
	tests := []struct {
		name  string
		table *RouteTable
		host  string
		want  string
	}{
		{name: "exact", table: rt, host: "echo", want: "echo"},
		{name: "with port", table: rt, host: "echo:8080", want: "echo8080"},
		{name: "upper case", table: rt, host: "ECHO:8080", want: "echo8080"},
		{name: "other port", table: rt, host: "echo:9090", want: ""},
		{name: "suffix is not a match", table: rt, host: "echo.default", want: ""},
		{name: "wildcard", table: withWildcard, host: "anything", want: "any"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if vh := tt.table.VirtualHost(tt.host); vh != nil {
				got = vh.Name
			}
			if got != tt.want {
				t.Errorf("VirtualHost(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

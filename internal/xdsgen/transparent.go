package xdsgen

import (
	"net"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/names"
)

// The listeners and clusters of transparent mode (docs/xds.md "Transparent proxying").
const (
	VirtualOutboundListener = "virtualOutbound"
	VirtualInboundListener  = "virtualInbound"
	PassthroughCluster      = "PassthroughCluster"
	BlackHoleCluster        = "BlackHoleCluster"
	// OutboundCapturePort and InboundCapturePort are where `trellis iptables`
	// redirects outbound and inbound TCP.
	OutboundCapturePort = 15001
	InboundCapturePort  = 15006
)

// transparent emits, for a sidecar whose traffic is intercepted, the capture
// listeners on 15001 and 15006 and their clusters, and turns the inbound listeners
// into virtual ones (not bound; reached through 15006 by the original destination).
// The virtual outbound listeners of the services are serviceListeners'.
func (g *generator) transparent() {
	if !g.proxy.Transparent {
		return
	}
	for _, l := range g.res.Listeners {
		if l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND {
			l.BindToPort = wrapperspb.Bool(false)
		}
	}
	registryOnly := g.scope.RegistryOnly(g.proxy.RegistryOnly)
	outboundDefault := PassthroughCluster
	if registryOnly {
		outboundDefault = BlackHoleCluster
	}
	virtualOutbound := captureListener(VirtualOutboundListener, OutboundCapturePort, corev3.TrafficDirection_OUTBOUND, outboundDefault)
	virtualOutbound.Metadata = g.dnsTable()
	g.res.Listeners = append(g.res.Listeners, virtualOutbound,
		captureListener(VirtualInboundListener, InboundCapturePort, corev3.TrafficDirection_INBOUND, PassthroughCluster))
	g.res.Clusters = append(g.res.Clusters, &clusterv3.Cluster{
		Name:                 PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(ConnectTimeout),
	})
	if registryOnly {
		g.res.Clusters = append(g.res.Clusters, &clusterv3.Cluster{
			Name:                 BlackHoleCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			ConnectTimeout:       durationpb.New(ConnectTimeout),
		})
	}
}

// serviceListeners emits, for a sidecar whose traffic is intercepted, one virtual
// outbound listener per address and port of every service the proxy sees.
func (g *generator) serviceListeners() {
	if !g.proxy.Transparent {
		return
	}
	seen := map[string]bool{}
	for _, svc := range g.mesh.Services {
		if !g.scope.Sees(svc) {
			continue
		}
		for _, vip := range svc.Addresses {
			for _, port := range svc.Ports {
				addr := net.JoinHostPort(vip, strconv.FormatUint(uint64(port.Number), 10))
				if seen[addr] {
					g.errorf("service %s: address %s is already another service's; skipped", svc.FQDN, addr)
					continue
				}
				seen[addr] = true
				sa, err := socketAddress(addr)
				if err != nil {
					g.errorf("service %s: %v; skipped", svc.FQDN, err)
					continue
				}
				name := vip + "_" + strconv.FormatUint(uint64(port.Number), 10)
				var filter *listenerv3.Filter
				if model.IsHTTP(port.Protocol) {
					m := rdsHCM(name, names.OutboundRoute)
					g.routedByVIP = true
					g.normalize(m)
					filter = httpFilter(m)
				} else {
					filter = g.upstreamProxy(name, svc, port)
				}
				l := listener(name, sa, corev3.TrafficDirection_OUTBOUND, filter)
				l.BindToPort = wrapperspb.Bool(false)
				g.res.Listeners = append(g.res.Listeners, l)
			}
		}
	}
}

// captureListener is a listener bound on 0.0.0.0:port that hands each connection to
// the virtual listener of its original destination, or else to its one chain: a TCP
// proxy to cluster.
func captureListener(name string, port uint32, dir corev3.TrafficDirection, cluster string) *listenerv3.Listener {
	sa := &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
	tp := &tcpproxyv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}
	l := listener(name, sa, dir, &listenerv3.Filter{
		Name:       wellknown.TCPProxy,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)},
	})
	l.UseOriginalDst = wrapperspb.Bool(true)
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       wellknown.OriginalDestination,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})},
	}}
	return l
}

// vipDomains are the Host values a client that calls a service by one of its virtual
// IPs sends: ip:port, and the bare ip for port 80.
func vipDomains(svc *model.Service, port uint32) []string {
	var out []string
	for _, vip := range svc.Addresses {
		host := vip
		if net.ParseIP(vip).To4() == nil {
			host = "[" + vip + "]"
		}
		out = append(out, host+":"+strconv.FormatUint(uint64(port), 10))
		if port == 80 {
			out = append(out, host)
		}
	}
	return out
}

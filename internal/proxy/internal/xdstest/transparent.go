package xdstest

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// CaptureListener is a transparent-mode capture listener (virtualOutbound,
// virtualInbound): use_original_dst, the original_dst listener filter, and a TCP
// proxy to cluster for the connections no other listener takes.
func CaptureListener(name, addr, cluster string) *listenerv3.Listener {
	l := TCPListener(name, addr, cluster)
	l.UseOriginalDst = wrapperspb.Bool(true)
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       "envoy.filters.listener.original_dst",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: MustAny(&origdstv3.OriginalDst{})},
	}}
	return l
}

// Unbound returns l with bind_to_port false.
func Unbound(l *listenerv3.Listener) *listenerv3.Listener {
	l.BindToPort = wrapperspb.Bool(false)
	return l
}

// PassthroughCluster is the ORIGINAL_DST cluster of transparent mode.
func PassthroughCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "PassthroughCluster",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

// BlackHoleCluster is the endpoint-less STATIC cluster of REGISTRY_ONLY mode.
func BlackHoleCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "BlackHoleCluster",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

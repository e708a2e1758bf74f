package xdsgen

import (
	"math"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/model"
)

// The outbound clusters (docs/xds.md, "Clusters"): one per service port and one per
// DestinationRule subset, with the traffic policy translated into Envoy's cluster
// fields. Every outbound cluster carries circuit breakers: the DestinationRule's
// limits, else no limit (as Istio), and the retry budget (the DestinationRule's
// retryBudget, else model.DefaultRetryBudget) unless connectionPool.http.maxRetries
// sets a fixed limit instead.

// unlimited is the circuit-breaker threshold of a limit nobody set.
const unlimited = math.MaxUint32

// cluster emits, once, the cluster a reference names and its endpoints, and returns
// its name.
func (g *generator) cluster(ref model.ClusterRef) string {
	name := ref.Name()
	if g.clusters[name] {
		return name
	}
	g.clusters[name] = true
	if g.shared != nil {
		key := g.shared.clusterKey(g, ref)
		if c, ok := g.shared.clusters[key]; ok {
			g.res.Clusters = append(g.res.Clusters, c.cluster)
			if c.endpoints != nil {
				g.res.Endpoints = append(g.res.Endpoints, c.endpoints)
			}
			return name
		}
		nc, ne := len(g.res.Clusters), len(g.res.Endpoints)
		defer func() {
			c := sharedCluster{cluster: g.res.Clusters[nc]}
			if len(g.res.Endpoints) > ne {
				c.endpoints = g.res.Endpoints[ne]
			}
			g.shared.clusters[key] = c
		}()
	}
	info, err := g.mesh.ClusterFrom(ref, g.scope.Namespace)
	if err != nil {
		// The model only makes references it can resolve; keep the reference valid.
		g.errorf("%v; emitting it without endpoints", err)
		g.res.Clusters = append(g.res.Clusters, edsCluster(name, v1alpha1.ProtocolHTTP))
		g.res.Endpoints = append(g.res.Endpoints, &endpointv3.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{}}})
		return name
	}
	if proto := g.mesh.UpstreamProtocol(info); proto != info.Port.Protocol {
		// HTTP/1.1 over HTTP/2 between sidecars: the cluster (and its ALPN) as for
		// an HTTP2 port.
		port := *info.Port
		port.Protocol = proto
		info.Port = &port
	}
	var c *clusterv3.Cluster
	if info.Service.Resolution == model.ResolutionDNS {
		c = baseCluster(name, clusterv3.Cluster_STRICT_DNS, info.Port.Protocol)
		c.LoadAssignment = g.assignment(name, info.Endpoints)
	} else {
		c = edsCluster(name, info.Port.Protocol)
		g.res.Endpoints = append(g.res.Endpoints, g.assignment(name, info.Endpoints))
	}
	applyPolicy(c, info.Policy, info.Port.Protocol)
	switch {
	case g.grpc:
		g.grpcCluster(c, info)
	case g.proxy.MTLS:
		c.TransportSocket = upstreamTLS(info)
	case info.TLS != nil && !info.TLS.Auto:
		g.errorf("cluster %s: the DestinationRule asks for TLS mode %s, but this sidecar does not take part in TLS; plaintext is used", name, info.TLS.Mode)
	}
	g.res.Clusters = append(g.res.Clusters, c)
	return name
}

// assignment lists endpoints: host:port, the host an IP address or, for STRICT_DNS
// clusters, a name the sidecar resolves.
func (g *generator) assignment(name string, eps []model.Endpoint) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, ep := range eps {
		addr, err := socketAddress(ep.Address)
		if err != nil {
			g.errorf("endpoint %s of %s (node %s): %v; skipped", ep.Address, name, ep.NodeID, err)
			continue
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			Metadata:       endpointMetadata(ep),
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
	}
}

// applyPolicy translates a traffic policy (nil: none) into c.
func applyPolicy(c *clusterv3.Cluster, p *model.TrafficPolicy, protocol v1alpha1.Protocol) {
	if p == nil {
		p = &model.TrafficPolicy{}
	}
	if lb := p.LoadBalancer; lb != nil {
		switch lb.Policy {
		case model.LBLeastRequest:
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
				ChoiceCount: wrapperspb.UInt32(2),
			}}
		case model.LBRandom:
			c.LbPolicy = clusterv3.Cluster_RANDOM
		case model.LBRingHash:
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			if lb.MinimumRingSize > 0 {
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
					MinimumRingSize: wrapperspb.UInt64(lb.MinimumRingSize),
				}}
			}
		}
	}
	cp := p.ConnectionPool
	if cp == nil {
		cp = &model.ConnectionPool{}
	}
	th := &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     wrapperspb.UInt32(orUnlimited(cp.MaxConnections)),
		MaxPendingRequests: wrapperspb.UInt32(orUnlimited(cp.MaxPendingRequests)),
		MaxRequests:        wrapperspb.UInt32(orUnlimited(cp.MaxRequests)),
	}
	if cp.MaxRetries > 0 {
		th.MaxRetries = wrapperspb.UInt32(cp.MaxRetries)
	}
	switch {
	case p.RetryBudget != nil:
		th.RetryBudget = retryBudget(*p.RetryBudget) // max_retries, if set, is then ignored, as in Envoy
	case cp.MaxRetries == 0:
		th.RetryBudget = retryBudget(model.DefaultRetryBudget)
	}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	if cp.ConnectTimeout != nil {
		c.ConnectTimeout = durationpb.New(cp.ConnectTimeout.Std())
	}
	if opts := protocolOptions(protocol, cp); opts != nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: mustAny(opts)}
	}
	if od := p.OutlierDetection; od != nil {
		c.OutlierDetection = outlierDetection(od)
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: float64(od.MinHealthPercent)}}
	}
}

func orUnlimited(v uint32) uint32 {
	if v == 0 {
		return unlimited
	}
	return v
}

func retryBudget(b model.RetryBudget) *clusterv3.CircuitBreakers_Thresholds_RetryBudget {
	return &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
		BudgetPercent:       &typev3.Percent{Value: b.Percent},
		MinRetryConcurrency: wrapperspb.UInt32(b.MinConcurrency),
	}
}

// protocolOptions are the upstream HTTP options of a cluster: HTTP/2 (h2c) for
// HTTP2 and GRPC ports, and the connection pool's idle timeout and requests per
// connection; nil when there is nothing to say (HTTP/1.1 by default, or TCP).
func protocolOptions(protocol v1alpha1.Protocol, cp *model.ConnectionPool) *httpv3.HttpProtocolOptions {
	if !model.IsHTTP(protocol) {
		return nil
	}
	var common *corev3.HttpProtocolOptions
	if cp.IdleTimeout != nil || cp.MaxRequestsPerConnection > 0 {
		common = &corev3.HttpProtocolOptions{}
		if cp.IdleTimeout != nil {
			common.IdleTimeout = durationpb.New(cp.IdleTimeout.Std())
		}
		if cp.MaxRequestsPerConnection > 0 {
			common.MaxRequestsPerConnection = wrapperspb.UInt32(cp.MaxRequestsPerConnection)
		}
	}
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{}
	switch {
	case protocol == v1alpha1.ProtocolHTTP2 || protocol == v1alpha1.ProtocolGRPC:
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}
	case common != nil:
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
		}
	default:
		return nil
	}
	return &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions:   &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	}
}

// outlierDetection translates outlier detection as Istio does: a consecutive-error
// count enforces ejection (100%) when it is above 0, and is off at 0.
func outlierDetection(od *model.OutlierDetection) *clusterv3.OutlierDetection {
	out := &clusterv3.OutlierDetection{}
	if v := od.Consecutive5xx; v != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(*v)
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(enforcing(*v))
	}
	if v := od.ConsecutiveGatewayFailure; v != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(*v)
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(enforcing(*v))
	}
	if od.Interval != nil {
		out.Interval = durationpb.New(od.Interval.Std())
	}
	if od.BaseEjectionTime != nil {
		out.BaseEjectionTime = durationpb.New(od.BaseEjectionTime.Std())
	}
	if od.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(od.MaxEjectionPercent)
	}
	return out
}

func enforcing(count uint32) uint32 {
	if count > 0 {
		return 100
	}
	return 0
}

// formatSeconds is a whole number of seconds as Envoy's CORS max_age spells it.
func formatSeconds(s float64) string { return strconv.FormatInt(int64(s), 10) }

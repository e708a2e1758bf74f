package runtime

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/lb"
)

func parseCluster(c *clusterv3.Cluster) (*clusterSpec, error) {
	if err := checkFields(c.ProtoReflect(), clusterFields); err != nil {
		return nil, err
	}
	spec := &clusterSpec{cluster: Cluster{
		Name:           c.GetName(),
		ConnectTimeout: DefaultConnectTimeout,
		IdleTimeout:    DefaultIdleTimeout,
		PanicThreshold: lb.DefaultPanicThreshold,
		Breakers:       DefaultThresholds(),
	}}
	cl := &spec.cluster
	if ct := c.GetConnectTimeout(); ct != nil {
		cl.ConnectTimeout = ct.AsDuration()
		if cl.ConnectTimeout <= 0 {
			return nil, fieldErrorf("connect_timeout", "must be positive")
		}
	}
	if err := parseLBPolicy(c, &cl.LB); err != nil {
		return nil, err
	}
	switch c.GetType() {
	case clusterv3.Cluster_ORIGINAL_DST:
		if err := parseOriginalDstCluster(c); err != nil {
			return nil, err
		}
		cl.OriginalDst = true
	case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS:
		if c.GetLoadAssignment() == nil && c.GetType() == clusterv3.Cluster_STATIC {
			// No endpoints: every connection is refused (BlackHoleCluster).
			if c.GetDnsRefreshRate() != nil {
				return nil, fieldErrorf("dns_refresh_rate", "is only used by a STRICT_DNS cluster")
			}
			break
		}
		if c.GetLoadAssignment() == nil {
			return nil, fieldErrorf("load_assignment", "is required for a %s cluster", c.GetType())
		}
		addrs, err := parseLoadAssignment(c.GetLoadAssignment())
		if err != nil {
			return nil, prefixed("load_assignment", err)
		}
		spec.static = addrs
		if c.GetType() == clusterv3.Cluster_STRICT_DNS {
			cl.DNS, cl.DNSRefreshRate = true, DefaultDNSRefreshRate
			if r := c.GetDnsRefreshRate(); r != nil {
				if cl.DNSRefreshRate, err = duration(r, "dns_refresh_rate"); err != nil {
					return nil, err
				}
			}
		} else if c.GetDnsRefreshRate() != nil {
			return nil, fieldErrorf("dns_refresh_rate", "is only used by a STRICT_DNS cluster")
		}
	case clusterv3.Cluster_EDS:
		if c.GetLoadAssignment() != nil {
			return nil, fieldErrorf("load_assignment", "is not used by an EDS cluster")
		}
		if c.GetDnsRefreshRate() != nil {
			return nil, fieldErrorf("dns_refresh_rate", "is only used by a STRICT_DNS cluster")
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
		return nil, fieldErrorf("type", "%s is not supported (want STATIC, STRICT_DNS, EDS or ORIGINAL_DST)", c.GetType())
	}
	if err := parseThresholds(c.GetCircuitBreakers(), &cl.Breakers); err != nil {
		return nil, prefixed("circuit_breakers", err)
	}
	if od := c.GetOutlierDetection(); od != nil {
		cl.Outlier = parseOutlier(od)
	}
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		cl.PanicThreshold = p.GetValue()
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
			cl.HTTP2 = true
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions:
		default:
			return nil, fieldErrorf(at+".explicit_http_config", "one of http_protocol_options or http2_protocol_options is required")
		}
		if common := po.GetCommonHttpProtocolOptions(); common != nil {
			if it := common.GetIdleTimeout(); it != nil {
				d, err := duration(it, "common_http_protocol_options.idle_timeout")
				if err != nil {
					return nil, prefixed(at, err)
				}
				cl.IdleTimeout = d // zero disables it, as in Envoy
			}
			cl.MaxRequestsPerConnection = common.GetMaxRequestsPerConnection().GetValue()
		}
	}
	if ts := c.GetTransportSocket(); ts != nil {
		u, err := parseUpstreamTLS(ts)
		if err != nil {
			return nil, prefixed("transport_socket", err)
		}
		cl.TLS = u
	}
	return pgvOr(c, spec)
}

func parseLBPolicy(c *clusterv3.Cluster, p *LBPolicy) error {
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		return nil // checked by parseOriginalDstCluster
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		p.Kind = RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		p.Kind = LeastRequest
	case clusterv3.Cluster_RANDOM:
		p.Kind = Random
	case clusterv3.Cluster_RING_HASH:
		p.Kind = RingHash
	default:
		return fieldErrorf("lb_policy", "%s is not supported (want ROUND_ROBIN, LEAST_REQUEST, RANDOM or RING_HASH)", c.GetLbPolicy())
	}
	if lr := c.GetLeastRequestLbConfig(); lr != nil {
		if p.Kind != LeastRequest {
			return fieldErrorf("least_request_lb_config", "is only used with lb_policy LEAST_REQUEST")
		}
		p.ChoiceCount = int(lr.GetChoiceCount().GetValue())
	}
	if rh := c.GetRingHashLbConfig(); rh != nil {
		if p.Kind != RingHash {
			return fieldErrorf("ring_hash_lb_config", "is only used with lb_policy RING_HASH")
		}
		p.MinRingSize = int(min(rh.GetMinimumRingSize().GetValue(), 1<<23))
	}
	return nil
}

func parseThresholds(cb *clusterv3.CircuitBreakers, t *Thresholds) error {
	th := cb.GetThresholds()
	switch len(th) {
	case 0:
		return nil
	case 1:
	default:
		return fieldErrorf("thresholds", "must hold at most one entry (priority DEFAULT), not %d", len(th))
	}
	set := func(dst *int64, v *wrapperspb.UInt32Value) {
		if v != nil {
			*dst = int64(v.GetValue())
		}
	}
	set(&t.MaxConnections, th[0].GetMaxConnections())
	set(&t.MaxPendingRequests, th[0].GetMaxPendingRequests())
	set(&t.MaxRequests, th[0].GetMaxRequests())
	set(&t.MaxRetries, th[0].GetMaxRetries())
	if rb := th[0].GetRetryBudget(); rb != nil {
		t.RetryBudget = &RetryBudget{BudgetPercent: DefaultBudgetPercent, MinRetryConcurrency: DefaultMinRetryConcurrency}
		if p := rb.GetBudgetPercent(); p != nil {
			t.RetryBudget.BudgetPercent = p.GetValue()
		}
		set(&t.RetryBudget.MinRetryConcurrency, rb.GetMinRetryConcurrency())
	}
	return nil
}

func parseOutlier(od *clusterv3.OutlierDetection) *lb.OutlierConfig {
	cfg := lb.OutlierDefaults()
	u32 := func(dst *uint32, v *wrapperspb.UInt32Value) {
		if v != nil {
			*dst = v.GetValue()
		}
	}
	u32(&cfg.Consecutive5xx, od.GetConsecutive_5Xx())
	u32(&cfg.ConsecutiveGatewayFailure, od.GetConsecutiveGatewayFailure())
	u32(&cfg.Enforcing5xx, od.GetEnforcingConsecutive_5Xx())
	u32(&cfg.EnforcingGatewayFailure, od.GetEnforcingConsecutiveGatewayFailure())
	u32(&cfg.MaxEjectionPercent, od.GetMaxEjectionPercent())
	// The constraints generated from the protos (run after) reject non-positive
	// durations.
	if d := od.GetInterval(); d != nil {
		cfg.Interval = d.AsDuration()
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		cfg.BaseEjectionTime = d.AsDuration()
	}
	return &cfg
}

package runtime

import (
	"context"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
)

// Transparent proxying (docs/xds.md, "Transparent proxying"): capture listeners
// (use_original_dst) that hand each connection to the listener at its original
// destination, listeners that are never bound (bind_to_port false), the original_dst
// listener filter, and ORIGINAL_DST clusters that connect to the original destination.

// OriginalDstFilter is the listener filter that recovers a redirected connection's
// original destination (SO_ORIGINAL_DST).
const OriginalDstFilter = "envoy.filters.listener.original_dst"

// parseTransparent reads use_original_dst and bind_to_port.
func parseTransparent(l *listenerv3.Listener, spec *listenerSpec) error {
	spec.useOriginalDst = l.GetUseOriginalDst().GetValue()
	spec.origDst = spec.useOriginalDst
	if b := l.GetBindToPort(); b != nil && !b.GetValue() {
		spec.virtual = true
	}
	if spec.useOriginalDst && spec.virtual {
		return fieldErrorf("use_original_dst", "a listener that is not bound (bind_to_port false) accepts no connection to hand on")
	}
	return nil
}

// parseOriginalDstFilter checks the original_dst listener filter: its config, if
// any, must be empty.
func parseOriginalDstFilter(lf *listenerv3.ListenerFilter) error {
	tc := lf.GetTypedConfig()
	if tc == nil {
		return nil
	}
	cfg := &origdstv3.OriginalDst{}
	if err := unpack(tc, cfg); err != nil {
		return prefixed("typed_config", err)
	}
	if err := checkFields(cfg.ProtoReflect(), fields()); err != nil {
		return prefixed("typed_config", err)
	}
	return nil
}

// parseOriginalDstCluster checks an ORIGINAL_DST cluster: lb_policy CLUSTER_PROVIDED
// and no endpoints of its own.
func parseOriginalDstCluster(c *clusterv3.Cluster) error {
	if c.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
		return fieldErrorf("lb_policy", "%s is not supported by an ORIGINAL_DST cluster (want CLUSTER_PROVIDED)", c.GetLbPolicy())
	}
	switch {
	case c.GetLoadAssignment() != nil:
		return fieldErrorf("load_assignment", "is not used by an ORIGINAL_DST cluster")
	case c.GetEdsClusterConfig() != nil:
		return fieldErrorf("eds_cluster_config", "is not used by an ORIGINAL_DST cluster")
	case c.GetDnsRefreshRate() != nil:
		return fieldErrorf("dns_refresh_rate", "is only used by a STRICT_DNS cluster")
	case c.GetTransportSocket() != nil:
		return fieldErrorf("transport_socket", "is not supported on an ORIGINAL_DST cluster")
	}
	return nil
}

type originalDstKey struct{}

// WithOriginalDst returns ctx carrying a connection's original destination, for the
// ORIGINAL_DST clusters that serve it.
func WithOriginalDst(ctx context.Context, dst netip.AddrPort) context.Context {
	return context.WithValue(ctx, originalDstKey{}, dst)
}

// OriginalDstFrom returns the original destination WithOriginalDst put in ctx.
func OriginalDstFrom(ctx context.Context) (netip.AddrPort, bool) {
	dst, ok := ctx.Value(originalDstKey{}).(netip.AddrPort)
	return dst, ok
}

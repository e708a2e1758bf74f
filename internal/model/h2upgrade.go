package model

import (
	networkingapi "istio.io/api/networking/v1alpha3"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// HTTP/1.1 between sidecars over HTTP/2 (docs/traffic.md, "HTTP/2 between
// sidecars"): a client sidecar may carry the HTTP/1.1 requests of a service port
// to the server sidecars over multiplexed HTTP/2 (h2c, or h2 over mutual TLS); the
// server sidecar answers HTTP/2 on every HTTP listener and speaks HTTP/1.1 to its
// app. As Istio, per DestinationRule (connectionPool.http.h2UpgradePolicy) with a
// mesh-wide default.

// DefaultH2Upgrade is the mesh-wide default: decided by measurement
// (docs/benchmarks.md, "HTTP/1.1 over HTTP/2 between sidecars").
const DefaultH2Upgrade = false

// WithH2Upgrade sets whether HTTP/1.1 requests between sidecars travel over HTTP/2
// when no DestinationRule says; default DefaultH2Upgrade.
func WithH2Upgrade(upgrade bool) Option {
	return func(o *options) { o.h2Upgrade = upgrade }
}

// h2Upgrade reads an h2UpgradePolicy: nil for DEFAULT.
func h2Upgrade(p networkingapi.ConnectionPoolSettings_HTTPSettings_H2UpgradePolicy) *bool {
	switch p {
	case networkingapi.ConnectionPoolSettings_HTTPSettings_UPGRADE:
		return new(true)
	case networkingapi.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
		return new(false)
	}
	return nil
}

// UpstreamProtocol is the protocol a client sidecar speaks to the endpoints of a
// cluster: HTTP2 for an HTTP (or AUTO) port whose endpoints are all sidecars (a
// ServiceEntry host's are not) when its DestinationRule asks for the upgrade, or
// sets nothing and the mesh does; else the port's protocol.
func (m *Mesh) UpstreamProtocol(info ClusterInfo) v1alpha1.Protocol {
	proto := info.Port.Protocol
	if proto != v1alpha1.ProtocolHTTP && proto != v1alpha1.ProtocolAuto {
		return proto
	}
	upgrade := m.H2Upgrade
	if p := info.Policy; p != nil && p.ConnectionPool != nil && p.ConnectionPool.H2Upgrade != nil {
		upgrade = *p.ConnectionPool.H2Upgrade
	}
	if !upgrade || len(info.Endpoints) == 0 || info.Service.Origin == OriginServiceEntry {
		return proto
	}
	for _, ep := range info.Endpoints {
		if ep.NodeID == "" {
			return proto // not a sidecar: it may speak HTTP/1.1 only
		}
	}
	return v1alpha1.ProtocolHTTP2
}

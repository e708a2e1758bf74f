package model

import (
	"strconv"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/registry"
)

// Protocol detection (docs/traffic.md, "Protocol detection"). A v1/Service port that
// declares no protocol is v1alpha1.ProtocolAuto. Outbound, such a port gets HTTP
// routes (requests through the outbound listener are HTTP) and its upstream binds
// carry TCP. Inbound, a workload port reached by an AUTO Service port detects the
// protocol of each connection, unless the workload declares a protocol other than
// HTTP for it (HTTP is the default of a Workload port, so it is not taken as a
// choice; a sidecar detecting HTTP/1.1 serves it as an HTTP listener would).

// markAutoInbound records that the instance's port mp is reached by the Service port
// p, so that its inbound listener detects the protocol when p is AUTO and the
// workload declares no protocol, or HTTP, for mp.
func (b *builder) markAutoInbound(p *Port, mp *bootstrap.Port, inst registry.Instance) {
	if p.Protocol != v1alpha1.ProtocolAuto || protocolOf(mp.Protocol) != v1alpha1.ProtocolHTTP {
		return
	}
	if b.mesh.autoInbound == nil {
		b.mesh.autoInbound = make(map[string]bool)
	}
	b.mesh.autoInbound[autoKey(inst.NodeID, mp.Port)] = true
}

// InboundProtocol is the protocol of the inbound listener of the proxy's port p:
// ProtocolAuto when a Service port that declares no protocol reaches it and the
// workload declares none or HTTP, else the port's own protocol.
func (m *Mesh) InboundProtocol(proxyID string, p InboundPort) v1alpha1.Protocol {
	if m.autoInbound[autoKey(proxyID, p.Port)] {
		return v1alpha1.ProtocolAuto
	}
	return p.Protocol
}

func autoKey(nodeID string, port uint32) string {
	return nodeID + "/" + strconv.FormatUint(uint64(port), 10)
}

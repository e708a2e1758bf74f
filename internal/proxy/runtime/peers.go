package runtime

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// PeerMetadataKey is the filter_metadata key of an endpoint's workload metadata
// (docs/xds.md, "Endpoints"): string fields workload, namespace, app, version and
// principal, read by telemetry.
const PeerMetadataKey = "trellis"

// peerFields are the fields of the "trellis" endpoint metadata.
var peerFields = map[string]func(p *reqinfo.Peer) *string{
	"workload":  func(p *reqinfo.Peer) *string { return &p.Workload },
	"namespace": func(p *reqinfo.Peer) *string { return &p.Namespace },
	"app":       func(p *reqinfo.Peer) *string { return &p.App },
	"version":   func(p *reqinfo.Peer) *string { return &p.Version },
	"principal": func(p *reqinfo.Peer) *string { return &p.Principal },
}

// checkPeerMetadata accepts an endpoint's metadata only as filter_metadata["trellis"]
// with string fields the sidecar knows.
func checkPeerMetadata(md *corev3.Metadata) error {
	for key, st := range md.GetFilterMetadata() {
		if key != PeerMetadataKey {
			return fieldErrorf("filter_metadata", "key %q is not supported (want %q)", key, PeerMetadataKey)
		}
		for name, v := range st.GetFields() {
			if peerFields[name] == nil {
				return fieldErrorf("filter_metadata[\""+key+"\"]."+name, "is not supported (want workload, namespace, app, version or principal)")
			}
			if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
				return fieldErrorf("filter_metadata[\""+key+"\"]."+name, "must be a string")
			}
		}
	}
	return nil
}

// endpointPeers returns the workloads of a validated assignment's endpoints by
// address, or nil when no endpoint carries metadata.
func endpointPeers(cla *endpointv3.ClusterLoadAssignment) map[string]*reqinfo.Peer {
	var peers map[string]*reqinfo.Peer
	for _, group := range cla.GetEndpoints() {
		for _, lbe := range group.GetLbEndpoints() {
			st := lbe.GetMetadata().GetFilterMetadata()[PeerMetadataKey]
			if st == nil {
				continue
			}
			addr, err := socketAddress(lbe.GetEndpoint().GetAddress().GetSocketAddress(), false)
			if err != nil {
				continue
			}
			p := &reqinfo.Peer{}
			for name, v := range st.GetFields() {
				if f := peerFields[name]; f != nil {
					*f(p) = v.GetStringValue()
				}
			}
			if peers == nil {
				peers = map[string]*reqinfo.Peer{}
			}
			peers[addr] = p
		}
	}
	return peers
}

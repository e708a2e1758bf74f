package xdsgen

import (
	"maps"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// DNSMetadataKey is the filter_metadata key of the virtualOutbound listener that
// carries the sidecar's DNS table (docs/xds.md "DNS table").
const DNSMetadataKey = "trellis.dns"

// dnsTable is the host -> virtual IPs table of the services a transparent sidecar can
// reach by name: every service with addresses, under each name a client in the
// sidecar's namespace may use (name.ns.svc.cluster.local, name.ns.svc, name.ns, and
// name in its own namespace). Nil when no service has an address.
func (g *generator) dnsTable() *corev3.Metadata {
	hosts := map[string][]string{}
	for _, svc := range g.mesh.Services {
		if len(svc.Addresses) == 0 {
			continue
		}
		for _, host := range svc.Aliases(g.proxy.Namespace) {
			if _, taken := hosts[host]; !taken {
				hosts[host] = svc.Addresses
			}
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	fields := make(map[string]*structpb.Value, len(hosts))
	for _, host := range slices.Sorted(maps.Keys(hosts)) {
		ips := make([]*structpb.Value, len(hosts[host]))
		for i, ip := range hosts[host] {
			ips[i] = structpb.NewStringValue(ip)
		}
		fields[host] = structpb.NewListValue(&structpb.ListValue{Values: ips})
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{DNSMetadataKey: {Fields: fields}}}
}

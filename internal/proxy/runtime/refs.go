package runtime

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// RouteNames returns the route configurations that listeners fetch over RDS, sorted.
// Listeners that do not parse are skipped (they were never accepted).
func RouteNames(listeners map[string]*listenerv3.Listener) []string {
	var names []string
	for _, l := range listeners {
		if spec, err := parseListener(l); err == nil && spec.http != nil && spec.http.rds != "" {
			names = append(names, spec.http.rds)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// EndpointNames returns the load assignments that EDS clusters use, sorted.
func EndpointNames(clusters map[string]*clusterv3.Cluster) []string {
	var names []string
	for _, c := range clusters {
		if spec, err := parseCluster(c); err == nil && spec.eds {
			names = append(names, spec.edsName)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ListenerAddresses returns the address (host:port) of each listener that parses,
// mapped to the listener's name.
func ListenerAddresses(listeners map[string]*listenerv3.Listener) map[string]string {
	out := make(map[string]string, len(listeners))
	for name, l := range listeners {
		if spec, err := parseListener(l); err == nil {
			out[spec.addr] = name
		}
	}
	return out
}

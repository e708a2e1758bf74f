package runtime

import (
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/names"
)

// RouteNames returns the route configurations that listeners fetch over RDS, sorted.
// Listeners that do not parse are skipped (they were never accepted).
func RouteNames(listeners map[string]*listenerv3.Listener) []string {
	var names []string
	for _, l := range listeners {
		spec, err := parseListener(l)
		if err != nil {
			continue
		}
		for _, cs := range spec.chains {
			if cs.http != nil && cs.http.rds != "" {
				names = append(names, cs.http.rds)
			}
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
		if spec, err := parseListener(l); err == nil && !spec.virtual {
			out[spec.addr] = name
		}
	}
	return out
}

// WorkloadSecretUsers returns an *Error for every resource among resources (of type
// typeURL, already validated) that refers to the sidecar's own certificate, secret
// "default", naming the field; joined, or nil. A sidecar without a certificate
// rejects them.
func WorkloadSecretUsers(typeURL string, resources map[string]proto.Message) error {
	var errs []error
	for _, name := range sortedKeys(resources) {
		switch r := resources[name].(type) {
		case *listenerv3.Listener:
			spec, err := parseListener(r)
			if err != nil {
				continue
			}
			for i, cs := range spec.chains {
				if cs.tls != nil && cs.tls.CertSecret == names.WorkloadSecret {
					errs = append(errs, &Error{Type: typeURL, Name: name,
						Field: fmt.Sprintf("filter_chains[%d].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name", i),
						Msg:   noWorkloadSecret})
					break
				}
			}
		case *clusterv3.Cluster:
			spec, err := parseCluster(r)
			if err == nil && spec.cluster.TLS != nil && spec.cluster.TLS.CertSecret == names.WorkloadSecret {
				errs = append(errs, &Error{Type: typeURL, Name: name,
					Field: "transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name",
					Msg:   noWorkloadSecret})
			}
		}
	}
	return errors.Join(errs...)
}

const noWorkloadSecret = `secret "default" is not available: this sidecar has no certificate (its bootstrap has no tokenFile)`

// ClusterTLS returns the TLS settings of a cluster (m is a *clusterv3.Cluster that
// passed Validate), nil when it has none.
func ClusterTLS(m proto.Message) (*UpstreamTLS, error) {
	c, ok := m.(*clusterv3.Cluster)
	if !ok || c.GetTransportSocket() == nil {
		return nil, nil
	}
	spec, err := parseCluster(c)
	if err != nil {
		return nil, asError(ClusterType, c.GetName(), err)
	}
	return spec.cluster.TLS, nil
}

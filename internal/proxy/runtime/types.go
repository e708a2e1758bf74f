package runtime

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// Type URLs of the resource types the sidecar implements.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Types lists the resource types in the order the table is built from them.
var Types = []string{ListenerType, RouteType, ClusterType, EndpointType, SecretType}

// Names of the filters and extensions the sidecar implements.
const (
	HTTPConnectionManagerFilter = "envoy.filters.network.http_connection_manager"
	TCPProxyFilter              = "envoy.filters.network.tcp_proxy"
	RouterFilter                = "envoy.filters.http.router"
	HTTPProtocolOptionsKey      = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// Resources are the accepted xDS resources of every type, keyed by resource name.
// Build reads them; it never modifies them.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// Secrets are the secrets received over SDS (the trust bundle, ROOTCA). The
	// sidecar's own certificate ("default") is not among them: it is provided
	// locally, and Validate refuses a Secret of that name.
	Secrets map[string]*tlsv3.Secret
}

// ResourceName returns the name of a resource of one of the five types, or "" for
// any other message.
func ResourceName(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case *tlsv3.Secret:
		return r.GetName()
	}
	return ""
}

// kindOf is the resource kind used in error messages.
func kindOf(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "listener"
	case RouteType:
		return "route configuration"
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "cluster load assignment"
	case SecretType:
		return "secret"
	}
	return typeURL
}

// Error is a resource the sidecar cannot apply: which one, which field, and why. Its
// text is what the NACK's error_detail carries.
type Error struct {
	// Type is the resource's type URL.
	Type string
	// Name is the resource's name.
	Name string
	// Field is the path of the offending field, such as
	// filter_chains[0].filters[0].typed_config; empty when the whole resource is at fault.
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	s := kindOf(e.Type) + " \"" + e.Name + "\": "
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Msg
}

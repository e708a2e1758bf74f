package runtime

import (
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// Validate checks the resources of one type, the complete set that an xDS response
// would make current, against the contract (docs/xds.md). It returns every problem,
// joined; each is an *Error naming the resource and the field. Resources are checked
// one by one, plus what must hold across them (no two listeners on one address).
func Validate(typeURL string, resources map[string]proto.Message) error {
	names := make([]string, 0, len(resources))
	for name := range resources {
		names = append(names, name)
	}
	slices.Sort(names)
	var errs []error
	addrOwner := map[string]string{}
	for _, name := range names {
		m := resources[name]
		if got := ResourceName(m); got != name {
			errs = append(errs, &Error{Type: typeURL, Name: name, Msg: fmt.Sprintf("resource is named %q", got)})
			continue
		}
		spec, err := validateOne(typeURL, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l, ok := spec.(*listenerSpec); ok {
			if other, dup := addrOwner[l.addr]; dup {
				errs = append(errs, &Error{Type: typeURL, Name: name, Field: "address",
					Msg: fmt.Sprintf("%s is also the address of listener %q", l.addr, other)})
				continue
			}
			addrOwner[l.addr] = name
		}
	}
	return errors.Join(errs...)
}

// validateOne parses one resource and returns its spec, or an *Error.
func validateOne(typeURL string, m proto.Message) (any, error) {
	var (
		spec any
		err  error
	)
	switch r := m.(type) {
	case *listenerv3.Listener:
		if typeURL == ListenerType {
			spec, err = parseListener(r)
		}
	case *routev3.RouteConfiguration:
		if typeURL == RouteType {
			spec, err = parseRouteConfig(r)
		}
	case *clusterv3.Cluster:
		if typeURL == ClusterType {
			spec, err = parseCluster(r)
		}
	case *endpointv3.ClusterLoadAssignment:
		if typeURL == EndpointType {
			spec, err = parseLoadAssignment(r)
		}
	case *tlsv3.Secret:
		if typeURL == SecretType {
			spec, err = parseSecret(r)
		}
	}
	name := ResourceName(m)
	if err != nil {
		return nil, asError(typeURL, name, err)
	}
	if spec == nil {
		return nil, &Error{Type: typeURL, Name: name,
			Msg: fmt.Sprintf("message %s is not a %s", m.ProtoReflect().Descriptor().FullName(), kindOf(typeURL))}
	}
	return spec, nil
}

func asError(typeURL, name string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &Error{Type: typeURL, Name: name, Field: fe.field, Msg: fe.msg}
	}
	return &Error{Type: typeURL, Name: name, Msg: err.Error()}
}

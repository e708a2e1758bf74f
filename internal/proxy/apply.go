package proxy

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/names"

	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/xdsclient"
)

// Apply validates the new resources of one type; for listeners it also binds their
// addresses. If both succeed the resources become the accepted ones and the sidecar
// tries to build a table from everything accepted; the table is swapped in only when
// every reference resolves. It runs on the xDS client's goroutine.
func (p *Proxy) Apply(u xdsclient.Update) error {
	msgs := make(map[string]proto.Message, len(u.Resources))
	for name, r := range u.Resources {
		msgs[name] = r.Message
	}
	if err := runtime.Validate(u.TypeURL, msgs); err != nil {
		return err
	}
	if err := p.sec.checkUpdate(u.TypeURL, msgs); err != nil {
		return err
	}
	p.mu.Lock()
	next := maps.Clone(p.accepted)
	p.mu.Unlock()
	next[u.TypeURL] = u
	res := resources(next)
	if u.TypeURL == runtime.ListenerType {
		if err := p.listeners.Prepare(runtime.ListenerAddresses(res.Listeners)); err != nil {
			return err
		}
	}
	table, buildErr := runtime.Build(res)
	if buildErr != nil && !errors.Is(buildErr, runtime.ErrUnresolved) {
		return buildErr
	}
	// As Envoy does at start, wait for the first listeners and clusters, even when
	// there are none.
	for _, tu := range []string{runtime.ListenerType, runtime.ClusterType} {
		if _, received := next[tu]; !received && buildErr == nil {
			buildErr = fmt.Errorf("%w: no %s accepted yet", runtime.ErrUnresolved, tu)
		}
	}
	p.mu.Lock()
	p.accepted = next
	p.mu.Unlock()
	if u.TypeURL == runtime.SecretType {
		p.sec.applySecrets(u)
	}
	if buildErr != nil {
		p.cfg.Logger.Debug("configuration not complete yet", "reason", buildErr)
		return nil
	}
	if err := p.sec.secrets.Attach(table); err != nil {
		p.cfg.Logger.Warn("TLS settings not usable; their connections fail", "error", err)
	}
	p.http.Upstreams().Attach(table)
	p.table.Store(table)
	p.updateDNS(table)
	p.listeners.Activate(table)
	if !p.ready.Swap(true) {
		p.cfg.Logger.Info("first configuration applied; ready", "listeners", len(table.Listeners), "clusters", len(table.Clusters))
	} else {
		p.cfg.Logger.Debug("configuration applied", "type", u.TypeURL, "version", u.Version)
	}
	return nil
}

// Wants names the route configurations and load assignments that the accepted
// listeners and clusters refer to.
func (p *Proxy) Wants(typeURL string) []string {
	p.mu.Lock()
	res := resources(p.accepted)
	p.mu.Unlock()
	switch typeURL {
	case runtime.RouteType:
		return runtime.RouteNames(res.Listeners)
	case runtime.EndpointType:
		return runtime.EndpointNames(res.Clusters)
	case runtime.SecretType:
		// The trust bundle, from the start (docs/xds.md, "Secrets").
		return []string{names.RootCASecret}
	}
	return nil
}

// resources converts accepted updates into the runtime's typed maps.
func resources(accepted map[string]xdsclient.Update) runtime.Resources {
	return runtime.Resources{
		Listeners: typed[*listenerv3.Listener](accepted[runtime.ListenerType]),
		Routes:    typed[*routev3.RouteConfiguration](accepted[runtime.RouteType]),
		Clusters:  typed[*clusterv3.Cluster](accepted[runtime.ClusterType]),
		Endpoints: typed[*endpointv3.ClusterLoadAssignment](accepted[runtime.EndpointType]),
		Secrets:   typed[*tlsv3.Secret](accepted[runtime.SecretType]),
	}
}

func typed[T proto.Message](u xdsclient.Update) map[string]T {
	out := make(map[string]T, len(u.Resources))
	for name, r := range u.Resources {
		if m, ok := r.Message.(T); ok {
			out[name] = m
		}
	}
	return out
}

// sortedNames returns the names of an update's resources in order.
func sortedNames(u xdsclient.Update) []string {
	return slices.Sorted(maps.Keys(u.Resources))
}

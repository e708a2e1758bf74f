package xdsserver

import (
	"context"
	"errors"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/genproto/googleapis/rpc/status"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/registry"
)

// callbacks are the Server's go-control-plane callbacks: registration, NACKs and
// metrics. They are methods of Server under another name, so that Server's exported
// API stays small.
type callbacks Server

var _ serverv3.Callbacks = (*callbacks)(nil)

func (c *callbacks) OnStreamOpen(context.Context, int64, string) error      { return nil }
func (c *callbacks) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }

func (c *callbacks) OnStreamClosed(id int64, _ *corev3.Node) {
	c.closed(registry.Stream{Protocol: registry.SotW, ID: id})
}

func (c *callbacks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	c.closed(registry.Stream{Protocol: registry.Delta, ID: id})
}

func (c *callbacks) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	stream := registry.Stream{Protocol: registry.SotW, ID: id}
	node, err := c.request(stream, req.GetNode())
	if err != nil {
		return err
	}
	if req.GetErrorDetail() != nil {
		c.nack(node, req.GetTypeUrl(), req.GetResourceNames(), req.GetResponseNonce(), req.GetErrorDetail())
	} else if req.GetTypeUrl() == resourcev3.ListenerType && req.GetVersionInfo() != "" {
		// An ACK of listeners, or a reconnecting sidecar that has some.
		c.serving(stream, node)
	}
	return nil
}

func (c *callbacks) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	stream := registry.Stream{Protocol: registry.Delta, ID: id}
	node, err := c.request(stream, req.GetNode())
	if err != nil {
		return err
	}
	if req.GetErrorDetail() != nil {
		c.nack(node, req.GetTypeUrl(), req.GetResourceNamesSubscribe(), req.GetResponseNonce(), req.GetErrorDetail())
	} else if req.GetTypeUrl() == resourcev3.ListenerType && (req.GetResponseNonce() != "" || len(req.GetInitialResourceVersions()) > 0) {
		c.serving(stream, node)
	}
	return nil
}

// serving makes a starting instance an endpoint: its sidecar has its listeners.
func (c *callbacks) serving(stream registry.Stream, node string) {
	if c.registry.MarkServing(stream) {
		c.log.Info("proxy serving", "node", node, "protocol", stream.Protocol, "stream", stream.ID)
	}
}

func (c *callbacks) OnStreamResponse(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	c.metrics.pushes.WithLabelValues(shortType(resp.GetTypeUrl())).Inc()
}

func (c *callbacks) OnStreamDeltaResponse(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	c.metrics.pushes.WithLabelValues(shortType(resp.GetTypeUrl())).Inc()
}

func (c *callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error {
	return errors.New("REST fetch is not served; use an ADS stream")
}

func (c *callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

// request registers the stream's node on its first request, and returns the node ID.
// Later requests of a stream (which may not repeat the node) return the ID recorded
// at registration.
func (c *callbacks) request(stream registry.Stream, node *corev3.Node) (string, error) {
	// Every request of every stream comes here (thousands of ACKs per change): the
	// known streams are looked up under the read lock.
	c.mu.RLock()
	id, ok := c.streams[stream]
	c.mu.RUnlock()
	if ok {
		return id, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.streams[stream]; ok {
		return id, nil
	}
	if node.GetId() == "" {
		c.log.Warn("rejecting xDS stream: the first request has no node.id", "stream", stream.ID, "protocol", stream.Protocol)
		return "", errors.New("the first request of a stream must carry node.id")
	}
	md, err := bootstrap.MetadataFromProto(node)
	if err != nil {
		// A client without Trellis metadata (grpc-go, a hand-written bootstrap) is a
		// client-only proxy in the default namespace.
		c.log.Warn("xDS node metadata is not Trellis bootstrap metadata; registering it as a client in the default namespace",
			"node", node.GetId(), "err", err)
		md = bootstrap.Metadata{Workload: node.GetId()}
	}
	c.streams[stream] = node.GetId()
	// A sidecar is an endpoint once it has its listeners: at its first listener ACK,
	// or now if it says it is serving already (a reconnection).
	c.registry.Register(stream, registry.Instance{NodeID: node.GetId(), Metadata: md, Starting: !md.Serving})
	c.log.Info("proxy connected", "node", node.GetId(), "protocol", stream.Protocol, "stream", stream.ID)
	return node.GetId(), nil
}

func (c *callbacks) closed(stream registry.Stream) {
	c.mu.Lock()
	node, ok := c.streams[stream]
	delete(c.streams, stream)
	c.mu.Unlock()
	if !ok {
		return
	}
	c.registry.Deregister(stream)
	c.log.Info("proxy disconnected", "node", node, "protocol", stream.Protocol, "stream", stream.ID)
}

// nack logs and counts a rejected response. names are the resources the request
// names; for a wildcard request, the resources of the node's current snapshot.
func (c *callbacks) nack(node, typeURL string, names []string, nonce string, detail *status.Status) {
	if len(names) == 0 {
		if snap, err := c.cache.getSnapshot(node); err == nil {
			for name := range snap.GetResources(typeURL) {
				names = append(names, name)
			}
		}
	}
	names = slices.Clone(names)
	slices.Sort(names)
	c.metrics.nacks.WithLabelValues(shortType(typeURL)).Inc()
	c.log.Warn("proxy rejected xDS resources (NACK)",
		"node", node, "type", typeURL, "resources", names, "nonce", nonce, "message", detail.GetMessage())
}

// shortType is the last element of a type URL: Listener, Cluster, ...
func shortType(typeURL string) string {
	if i := strings.LastIndexByte(typeURL, '.'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}

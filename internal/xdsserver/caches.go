package xdsserver

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"trellis.dev/trellis/internal/bootstrap"
)

// nodeCaches keeps the snapshots of sidecars and of proxyless gRPC applications in
// two caches, since the two ask differently:
//   - a sidecar asks for every listener and cluster (wildcard) and names the routes,
//     endpoints and secrets that its snapshot references: the cache runs in ADS
//     mode, which answers only requests that name every resource of the type, so
//     that a response never lacks what another one references;
//   - grpc-go asks for listeners by name (one per target it dials, one per server
//     it runs) and follows their references: its snapshot holds every service's
//     listener, and the cache answers with those the request names.
//
// A stream's node decides: its metadata field "proxyless" (bootstrap.Metadata).
// Those two answer State of the World streams; every Delta stream is answered by
// delta (delta.go), which holds the same snapshots.
type nodeCaches struct {
	sidecars, proxyless cachev3.SnapshotCache
	delta               *deltaCache
}

var _ cachev3.Cache = (*nodeCaches)(nil)

func newNodeCaches(log cacheLogger) *nodeCaches {
	return &nodeCaches{
		sidecars:  cachev3.NewSnapshotCache(true, cachev3.IDHash{}, log),
		proxyless: cachev3.NewSnapshotCache(false, cachev3.IDHash{}, log),
		delta:     newDeltaCache(),
	}
}

// forNode is the cache of a stream's node.
func (c *nodeCaches) forNode(node *corev3.Node) cachev3.SnapshotCache {
	if node.GetMetadata().GetFields()["proxyless"].GetStringValue() != "" {
		return c.proxyless
	}
	return c.sidecars
}

// of is the cache of a registered node's metadata.
func (c *nodeCaches) of(md bootstrap.Metadata) cachev3.SnapshotCache {
	if md.Proxyless != "" {
		return c.proxyless
	}
	return c.sidecars
}

func (c *nodeCaches) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	return c.forNode(req.GetNode()).CreateWatch(req, sub, ch)
}

func (c *nodeCaches) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	return c.delta.CreateDeltaWatch(req, sub, ch)
}

func (c *nodeCaches) Fetch(ctx context.Context, req *cachev3.Request) (cachev3.Response, error) {
	return c.forNode(req.GetNode()).Fetch(ctx, req)
}

// setSnapshot sets a registered node's snapshot, for its State of the World and its
// Delta streams.
func (c *nodeCaches) setSnapshot(ctx context.Context, node string, md bootstrap.Metadata, snap *nodeSnapshot) error {
	if err := c.of(md).SetSnapshot(ctx, node, snap); err != nil {
		return err
	}
	c.delta.setSnapshot(node, snap)
	return nil
}

// getSnapshot is a node's snapshot, from whichever cache holds it.
func (c *nodeCaches) getSnapshot(node string) (cachev3.ResourceSnapshot, error) {
	if snap, err := c.sidecars.GetSnapshot(node); err == nil {
		return snap, nil
	}
	return c.proxyless.GetSnapshot(node)
}

// clearSnapshot forgets a node in both caches.
func (c *nodeCaches) clearSnapshot(node string) {
	c.sidecars.ClearSnapshot(node)
	c.proxyless.ClearSnapshot(node)
	c.delta.clearSnapshot(node)
}

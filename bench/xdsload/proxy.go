package xdsload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"trellis.dev/trellis/internal/bootstrap"
)

// fleet is what the simulated proxies share: the counters of what they received and
// the change being tracked.
type fleet struct {
	bytes     atomic.Int64 // wire bytes of every response received
	responses atomic.Int64
	lastRecv  atomic.Int64 // unix nanoseconds of the last response
	// configured counts the proxies that have had listeners, clusters, endpoints and
	// routes at least once.
	configured atomic.Int64
	current    atomic.Pointer[change]

	mu       sync.Mutex
	failures int
	firstErr error
}

func (f *fleet) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	if f.firstErr == nil {
		f.firstErr = err
	}
}

// streamFailures returns how many streams broke, and the first error.
func (f *fleet) streamFailures() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures, f.firstErr
}

// change is one configuration change being tracked: the proxies have it once every
// response type in need has carried marker to them.
type change struct {
	kind   string
	marker []byte
	need   []string
	start  time.Time
	want   map[int]bool // the proxies whose ACK is awaited

	mu    sync.Mutex
	acked map[int]time.Duration
	done  chan struct{}
}

func newChange(kind, marker string, need []string, want map[int]bool) *change {
	return &change{kind: kind, marker: []byte(marker), need: need, want: want,
		acked: map[int]time.Duration{}, done: make(chan struct{})}
}

// record notes that proxy id has ACKed the change at t.
func (c *change) record(id int, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.want[id] {
		return
	}
	if _, ok := c.acked[id]; ok {
		return
	}
	c.acked[id] = t.Sub(c.start)
	if len(c.acked) == len(c.want) {
		close(c.done)
	}
}

// latencies returns the ACK latencies recorded so far.
func (c *change) latencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.acked))
	for _, d := range c.acked {
		out = append(out, d)
	}
	return out
}

// carries reports whether a response holds the marker, in a resource's name or body.
func (c *change) carries(resp *discoveryv3.DeltaDiscoveryResponse) bool {
	for _, r := range resp.GetResources() {
		if bytes.Contains([]byte(r.GetName()), c.marker) || bytes.Contains(r.GetResource().GetValue(), c.marker) {
			return true
		}
	}
	return false
}

// simProxy is one simulated proxy: a gRPC connection, a Delta ADS stream, and the
// subscriptions a Trellis sidecar makes.
type simProxy struct {
	id    int
	node  *corev3.Node
	fleet *fleet

	// Owned by the proxy's goroutine.
	eds     map[string]bool // endpoint names subscribed
	rds     bool            // subscribed to the outbound route configuration
	got     map[string]bool // response types received at least once
	cur     *change
	carried map[string]bool // types that carried cur's marker
	sentAck bool            // cur recorded
}

// newSimProxy describes proxy id: workload sim-<id> in service of namespace ns, with
// a unique inbound address (host) that the control plane publishes as its endpoint.
func newSimProxy(id int, name, service, ns, host string, f *fleet) (*simProxy, error) {
	md := bootstrap.Metadata{
		Workload:       name,
		Namespace:      ns,
		Labels:         map[string]string{"app": service},
		ServiceAccount: "default",
		Ports: []bootstrap.Port{{
			Name: "http", Port: 8080, Protocol: "HTTP",
			Target: "127.0.0.1:9", Inbound: host + ":15006",
		}},
		Outbound: host + ":15001",
	}
	node, err := bootstrap.Node{ID: name + "." + ns, Cluster: service, Metadata: md}.ToProto()
	if err != nil {
		return nil, fmt.Errorf("simulated proxy %s: %w", name, err)
	}
	return &simProxy{id: id, node: node, fleet: f, eds: map[string]bool{}, got: map[string]bool{}}, nil
}

// countBytes is a gRPC stats handler counting the wire bytes of received messages.
type countBytes struct{ n *atomic.Int64 }

var _ stats.Handler = countBytes{}

func (c countBytes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c countBytes) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok {
		c.n.Add(int64(p.WireLength))
	}
}
func (c countBytes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c countBytes) HandleConn(context.Context, stats.ConnStats)                       {}

// run connects to the control plane at addr and serves the stream until ctx ends or
// the stream breaks. started, if not nil, is called once the first request is sent.
func (p *simProxy) run(ctx context.Context, addr string, started func()) error {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(countBytes{n: &p.fleet.bytes}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return fmt.Errorf("proxy %s: connecting: %w", p.node.GetId(), err)
	}
	defer conn.Close()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("proxy %s: opening the delta ADS stream: %w", p.node.GetId(), err)
	}
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if err := s.Send(req); err != nil {
			return fmt.Errorf("proxy %s: sending: %w", p.node.GetId(), err)
		}
		return nil
	}
	if err := send(&discoveryv3.DeltaDiscoveryRequest{Node: p.node, TypeUrl: resourcev3.ClusterType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		return err
	}
	if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		return err
	}
	if started != nil {
		started()
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return fmt.Errorf("proxy %s: receiving: %w", p.node.GetId(), err)
		}
		if err := p.handle(resp, send); err != nil {
			return err
		}
	}
}

// handle ACKs a response, follows the subscriptions it implies, and tracks the
// current change.
func (p *simProxy) handle(resp *discoveryv3.DeltaDiscoveryResponse, send func(*discoveryv3.DeltaDiscoveryRequest) error) error {
	f := p.fleet
	f.responses.Add(1)
	f.lastRecv.Store(time.Now().UnixNano())
	t := resp.GetTypeUrl()

	c := f.current.Load()
	if c != p.cur {
		p.cur, p.carried, p.sentAck = c, map[string]bool{}, false
	}
	if c != nil && !p.sentAck && c.carries(resp) {
		p.carried[t] = true
	}

	if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
		return err
	}
	if c != nil && !p.sentAck && p.hasAll(c.need) {
		p.sentAck = true
		c.record(p.id, time.Now())
	}

	if !p.got[t] {
		p.got[t] = true
		if len(p.got) == 4 {
			f.configured.Add(1)
		}
	}
	switch t {
	case resourcev3.ClusterType:
		return p.followClusters(resp, send)
	case resourcev3.ListenerType:
		if !p.rds && hasResource(resp, "outbound") {
			p.rds = true
			return send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: []string{"outbound"}})
		}
	}
	return nil
}

func (p *simProxy) hasAll(types []string) bool {
	for _, t := range types {
		if !p.carried[t] {
			return false
		}
	}
	return true
}

// followClusters subscribes to the endpoints of new outbound clusters (EDS clusters
// whose service_name is their name, docs/xds.md) and unsubscribes from removed ones.
func (p *simProxy) followClusters(resp *discoveryv3.DeltaDiscoveryResponse, send func(*discoveryv3.DeltaDiscoveryRequest) error) error {
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType}
	for _, r := range resp.GetResources() {
		name := r.GetName()
		if strings.HasPrefix(name, "outbound|") && !p.eds[name] {
			p.eds[name] = true
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, name)
		}
	}
	for _, name := range resp.GetRemovedResources() {
		if p.eds[name] {
			delete(p.eds, name)
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, name)
		}
	}
	if len(req.ResourceNamesSubscribe) == 0 && len(req.ResourceNamesUnsubscribe) == 0 {
		return nil
	}
	return send(req)
}

func hasResource(resp *discoveryv3.DeltaDiscoveryResponse, name string) bool {
	for _, r := range resp.GetResources() {
		if r.GetName() == name {
			return true
		}
	}
	return false
}

package control

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// adsProxy is a simulated sidecar on one State of the World ADS stream: it asks for
// every cluster and the outbound route configuration, follows the EDS clusters with
// EDS requests, ACKs everything, and keeps the latest resources of each type. Its
// reader goroutine ends with the stream (the test's context or connection).
type adsProxy struct {
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node

	mu        sync.Mutex
	sentNode  bool
	names     map[string][]string
	resources map[string]map[string]proto.Message
	responses int
	err       error
	done      chan struct{}
}

func newADSProxy(ctx context.Context, t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *adsProxy {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening ADS stream: %v", err)
	}
	p := &adsProxy{stream: stream, node: node, names: map[string][]string{resource.RouteType: {"outbound"}},
		resources: map[string]map[string]proto.Message{}, done: make(chan struct{})}
	for _, typ := range []string{resource.ClusterType, resource.ListenerType, resource.RouteType} {
		if err := p.send(typ, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	go p.read()
	t.Cleanup(func() { <-p.done })
	return p
}

func (p *adsProxy) send(typ, version, nonce string) error {
	p.mu.Lock()
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: p.names[typ], VersionInfo: version, ResponseNonce: nonce}
	if !p.sentNode {
		req.Node, p.sentNode = p.node, true
	}
	p.mu.Unlock()
	return p.stream.Send(req)
}

func (p *adsProxy) read() {
	defer close(p.done)
	for {
		resp, err := p.stream.Recv()
		if err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		state := map[string]proto.Message{}
		var eds []string
		for _, a := range resp.GetResources() {
			m, err := a.UnmarshalNew()
			if err != nil {
				continue
			}
			state[resourceName(m)] = m
			if c, ok := m.(*clusterv3.Cluster); ok && c.GetType() == clusterv3.Cluster_EDS {
				eds = append(eds, c.GetName())
			}
		}
		p.mu.Lock()
		p.resources[resp.GetTypeUrl()] = state
		p.responses++
		p.mu.Unlock()
		if err := p.send(resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce()); err != nil {
			return
		}
		if resp.GetTypeUrl() == resource.ClusterType {
			p.mu.Lock()
			p.names[resource.EndpointType] = eds
			p.mu.Unlock()
			if err := p.send(resource.EndpointType, "", ""); err != nil {
				return
			}
		}
	}
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

// endpoints are the addresses of a cluster's load assignment.
func (p *adsProxy) endpoints(cluster string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	cla, ok := p.resources[resource.EndpointType][cluster].(*endpointv3.ClusterLoadAssignment)
	if !ok {
		return nil
	}
	var out []string
	for _, le := range cla.GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)))
		}
	}
	return out
}

// route is the outbound route configuration, or nil.
func (p *adsProxy) route() *routev3.RouteConfiguration {
	p.mu.Lock()
	defer p.mu.Unlock()
	rc, _ := p.resources[resource.RouteType]["outbound"].(*routev3.RouteConfiguration)
	return rc
}

// cluster returns a cluster by name, or nil.
func (p *adsProxy) cluster(name string) *clusterv3.Cluster {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, _ := p.resources[resource.ClusterType][name].(*clusterv3.Cluster)
	return c
}

// failed is the stream's error, if it ended.
func (p *adsProxy) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

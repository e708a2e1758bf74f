package xdsserver_test

import (
	"context"
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// adsClient is a minimal xDS client over one ADS stream, State of the World or
// Delta, written against the discovery v3 stubs: it subscribes, applies and ACKs
// responses, and can NACK.
type adsClient interface {
	// subscribe asks for resources of a type; no names is a wildcard.
	subscribe(typeURL string, names ...string) error
	// next waits for a response, applies it, ACKs it and returns its type and the
	// names of the resources it carried.
	next() (typeURL string, names []string, err error)
	// resources are the client's current resources of a type, by name.
	resources(typeURL string) map[string]proto.Message
	// nack rejects the last response of a type.
	nack(typeURL, message string) error
}

func unpack(anyRes interface {
	UnmarshalNew() (proto.Message, error)
}) (proto.Message, error) {
	return anyRes.UnmarshalNew()
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case interface{ GetClusterName() string }:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return fmt.Sprintf("%T", m)
}

// sotwClient is the State of the World client.
type sotwClient struct {
	node     *corev3.Node
	stream   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	sentNode bool
	names    map[string][]string
	version  map[string]string
	nonce    map[string]string
	state    map[string]map[string]proto.Message
}

func newSotW(ctx context.Context, t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *sotwClient {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening ADS stream: %v", err)
	}
	return &sotwClient{node: node, stream: stream, names: map[string][]string{}, version: map[string]string{},
		nonce: map[string]string{}, state: map[string]map[string]proto.Message{}}
}

func (c *sotwClient) send(typeURL string, detail *status.Status) error {
	req := &discoveryv3.DiscoveryRequest{
		TypeUrl:       typeURL,
		ResourceNames: c.names[typeURL],
		VersionInfo:   c.version[typeURL],
		ResponseNonce: c.nonce[typeURL],
		ErrorDetail:   detail,
	}
	if !c.sentNode {
		req.Node = c.node
		c.sentNode = true
	}
	return c.stream.Send(req)
}

func (c *sotwClient) subscribe(typeURL string, names ...string) error {
	c.names[typeURL] = names
	return c.send(typeURL, nil)
}

func (c *sotwClient) next() (string, []string, error) {
	resp, err := c.stream.Recv()
	if err != nil {
		return "", nil, err
	}
	t := resp.GetTypeUrl()
	state := map[string]proto.Message{}
	var names []string
	for _, a := range resp.GetResources() {
		m, err := unpack(a)
		if err != nil {
			return "", nil, err
		}
		state[resourceName(m)] = m
		names = append(names, resourceName(m))
	}
	c.state[t] = state
	c.version[t] = resp.GetVersionInfo()
	c.nonce[t] = resp.GetNonce()
	return t, names, c.send(t, nil)
}

func (c *sotwClient) resources(typeURL string) map[string]proto.Message { return c.state[typeURL] }

func (c *sotwClient) nack(typeURL, message string) error {
	return c.send(typeURL, &status.Status{Code: 3, Message: message})
}

// deltaClient is the incremental (Delta) client.
type deltaClient struct {
	node     *corev3.Node
	stream   discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	sentNode bool
	nonce    map[string]string
	state    map[string]map[string]proto.Message
}

func newDelta(ctx context.Context, t *testing.T, conn *grpc.ClientConn, node *corev3.Node) *deltaClient {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatalf("opening delta ADS stream: %v", err)
	}
	return &deltaClient{node: node, stream: stream, nonce: map[string]string{}, state: map[string]map[string]proto.Message{}}
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !c.sentNode {
		req.Node = c.node
		c.sentNode = true
	}
	return c.stream.Send(req)
}

func (c *deltaClient) subscribe(typeURL string, names ...string) error {
	return c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (c *deltaClient) next() (string, []string, error) {
	resp, err := c.stream.Recv()
	if err != nil {
		return "", nil, err
	}
	t := resp.GetTypeUrl()
	if c.state[t] == nil {
		c.state[t] = map[string]proto.Message{}
	}
	var names []string
	for _, r := range resp.GetResources() {
		m, err := unpack(r.GetResource())
		if err != nil {
			return "", nil, err
		}
		c.state[t][r.GetName()] = m
		names = append(names, r.GetName())
	}
	for _, name := range resp.GetRemovedResources() {
		delete(c.state[t], name)
		names = append(names, name)
	}
	c.nonce[t] = resp.GetNonce()
	return t, names, c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()})
}

func (c *deltaClient) resources(typeURL string) map[string]proto.Message { return c.state[typeURL] }

func (c *deltaClient) nack(typeURL, message string) error {
	return c.send(&discoveryv3.DeltaDiscoveryRequest{
		TypeUrl: typeURL, ResponseNonce: c.nonce[typeURL], ErrorDetail: &status.Status{Code: 3, Message: message},
	})
}

package xdsclient

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// sotwStream speaks State of the World: every request carries the full list of
// subscribed names (none for a wildcard type), the last accepted version and the
// nonce it answers.
type sotwStream struct {
	s        discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool
}

func (s *sotwStream) send(req *discoveryv3.DiscoveryRequest) error {
	if !s.sentNode {
		req.Node, s.sentNode = s.node, true
	}
	if err := s.s.Send(req); err != nil {
		return fmt.Errorf("sending %s request: %w", req.GetTypeUrl(), err)
	}
	return nil
}

func (s *sotwStream) subscribe(t *typeState) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: t.typeURL, ResponseNonce: t.nonce}
	if !t.wildcard {
		req.ResourceNames = t.names
	}
	// On a new stream the version is left empty so the server sends everything: a
	// restarted server may reuse version strings for other content.
	if t.nonce != "" {
		req.VersionInfo = t.version
	}
	return s.send(req)
}

func (s *sotwStream) ack(t *typeState, nonce string, nack error) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: t.typeURL, VersionInfo: t.version, ResponseNonce: nonce}
	if !t.wildcard {
		req.ResourceNames = t.names
	}
	if nack != nil {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	return s.send(req)
}

func (s *sotwStream) recv() (*response, error) {
	resp, err := s.s.Recv()
	if err != nil {
		return nil, err
	}
	r := &response{typeURL: resp.GetTypeUrl(), version: resp.GetVersionInfo(), nonce: resp.GetNonce(),
		resources: make(map[string]Resource, len(resp.GetResources()))}
	for _, a := range resp.GetResources() {
		name, m, err := decode(r.typeURL, a)
		if err != nil {
			r.err = err
			break
		}
		if _, dup := r.resources[name]; dup {
			r.err = fmt.Errorf("%w %q in a %s response", errDuplicate, name, r.typeURL)
			break
		}
		r.resources[name] = Resource{Version: r.version, Message: m}
	}
	return r, nil
}

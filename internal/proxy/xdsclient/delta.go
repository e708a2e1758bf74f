package xdsclient

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// deltaStream speaks incremental xDS: the first request of a type subscribes (a
// wildcard type to "*") and tells the versions already held; later requests send only
// the names added and removed.
type deltaStream struct {
	s        discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node     *corev3.Node
	sentNode bool
	opened   map[string]map[string]bool // type URL -> names subscribed on this stream
}

func (s *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) error {
	if !s.sentNode {
		req.Node, s.sentNode = s.node, true
	}
	if err := s.s.Send(req); err != nil {
		return fmt.Errorf("sending %s delta request: %w", req.GetTypeUrl(), err)
	}
	return nil
}

func (s *deltaStream) subscribe(t *typeState) error {
	sent, ok := s.opened[t.typeURL]
	if !ok {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t.typeURL, InitialResourceVersions: versions(t)}
		sent = map[string]bool{}
		if t.wildcard {
			req.ResourceNamesSubscribe = []string{"*"}
		} else {
			req.ResourceNamesSubscribe = t.names
			for _, n := range t.names {
				sent[n] = true
			}
		}
		s.opened[t.typeURL] = sent
		return s.send(req)
	}
	if t.wildcard {
		return nil
	}
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t.typeURL}
	want := map[string]bool{}
	for _, n := range t.names {
		want[n] = true
		if !sent[n] {
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
		}
	}
	for _, n := range sortedNames(sent) {
		if !want[n] {
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
		}
	}
	if len(req.ResourceNamesSubscribe) == 0 && len(req.ResourceNamesUnsubscribe) == 0 {
		return nil
	}
	s.opened[t.typeURL] = want
	return s.send(req)
}

func (s *deltaStream) ack(t *typeState, nonce string, nack error) error {
	req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t.typeURL, ResponseNonce: nonce}
	if nack != nil {
		req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	return s.send(req)
}

func (s *deltaStream) recv() (*response, error) {
	resp, err := s.s.Recv()
	if err != nil {
		return nil, err
	}
	r := &response{typeURL: resp.GetTypeUrl(), version: resp.GetSystemVersionInfo(), nonce: resp.GetNonce(),
		delta: true, removed: resp.GetRemovedResources(), resources: make(map[string]Resource, len(resp.GetResources()))}
	for _, res := range resp.GetResources() {
		if res.GetResource() == nil {
			r.err = fmt.Errorf("%s %q has no body", r.typeURL, res.GetName())
			break
		}
		name, m, err := decode(r.typeURL, res.GetResource())
		if err != nil {
			r.err = err
			break
		}
		if res.GetName() != "" && res.GetName() != name {
			r.err = fmt.Errorf("%s %q is named %q inside", r.typeURL, res.GetName(), name)
			break
		}
		if _, dup := r.resources[name]; dup {
			r.err = fmt.Errorf("%w %q in a %s response", errDuplicate, name, r.typeURL)
			break
		}
		r.resources[name] = Resource{Version: res.GetVersion(), Message: m}
	}
	return r, nil
}

package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// stream is one ADS stream in either protocol. Only the session goroutine sends.
type stream interface {
	// subscribe states the client's interest in t: on a new stream the initial
	// request, later a change of the subscribed names.
	subscribe(t *typeState) error
	// ack accepts (nack nil) or rejects the response with nonce.
	ack(t *typeState, nonce string, nack error) error
	// recv returns the next response.
	recv() (*response, error)
}

// response is a decoded response of either protocol.
type response struct {
	typeURL   string
	version   string
	nonce     string
	delta     bool
	resources map[string]Resource
	removed   []string
	err       error // the response cannot be decoded; it is rejected
}

// maxNACKDelay caps the delay of repeated NACKs: a SotW server answers a NACK with
// the same bad version at once, so the client slows the loop down.
const maxNACKDelay = 30 * time.Second

type pendingNACK struct {
	t     *typeState
	nonce string
	err   error
	at    time.Time
}

// session runs one stream until it breaks or ctx ends. progressed reports whether a
// response arrived, which resets the reconnect backoff.
func (c *Client) session(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	if c.cfg.Metadata != nil {
		ctx = metadata.NewOutgoingContext(ctx, c.cfg.Metadata)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	node := c.cfg.Node
	if c.cfg.ServingNode != nil && c.cfg.Serving != nil && c.cfg.Serving() {
		node = c.cfg.ServingNode
	}
	var s stream
	if c.cfg.Delta {
		ds, err := ads.DeltaAggregatedResources(ctx)
		if err != nil {
			return false, fmt.Errorf("opening delta ADS stream: %w", err)
		}
		s = &deltaStream{s: ds, node: node, opened: map[string]map[string]bool{}}
	} else {
		ss, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			return false, fmt.Errorf("opening ADS stream: %w", err)
		}
		s = &sotwStream{s: ss, node: node}
	}
	for _, t := range c.types {
		if !t.wildcard && len(t.names) == 0 {
			// Names wanted before anything is accepted: the trust bundle.
			names := slices.Clone(c.cfg.Handler.Wants(t.typeURL))
			slices.Sort(names)
			t.names = slices.Compact(names)
		}
		t.nonce = ""
		t.rejectedVersion, t.nackDelay = "", 0
		if t.wildcard || len(t.names) > 0 {
			if err := s.subscribe(t); err != nil {
				return false, err
			}
		}
	}
	c.connected.Store(true)
	c.cfg.Logger.Info("xDS stream open", "server", c.cfg.Server, "delta", c.cfg.Delta)

	responses := make(chan *response)
	recvErr := make(chan error, 1)
	wg.Go(func() {
		for {
			r, err := s.recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case responses <- r:
			case <-ctx.Done():
				return
			}
		}
	})

	var pending []pendingNACK
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case err := <-recvErr:
			return progressed, fmt.Errorf("receiving: %w", err)
		case r := <-responses:
			progressed = true
			p, err := c.handle(s, r)
			if err != nil {
				return progressed, err
			}
			if p != nil {
				pending = append(pending, *p)
			}
		case <-timer.C:
		}
		now := time.Now()
		var later []pendingNACK
		for _, p := range pending {
			if p.at.After(now) {
				later = append(later, p)
				continue
			}
			if p.t.nonce == p.nonce { // not superseded by a newer response
				if err := s.ack(p.t, p.nonce, p.err); err != nil {
					return progressed, err
				}
			}
		}
		pending = later
		if len(pending) > 0 {
			next := slices.MinFunc(pending, func(a, b pendingNACK) int { return a.at.Compare(b.at) })
			timer.Reset(time.Until(next.at))
		}
	}
}

// handle validates and applies one response, then ACKs or NACKs it. A repeated NACK
// of the same version is returned as pending instead of being sent at once.
func (c *Client) handle(s stream, r *response) (*pendingNACK, error) {
	t := c.byURL[r.typeURL]
	if t == nil {
		c.cfg.Logger.Warn("ignoring xDS response of an unsubscribed type", "type", r.typeURL)
		return nil, nil
	}
	t.nonce = r.nonce
	next, err := c.merge(t, r)
	if err == nil {
		err = c.cfg.Handler.Apply(Update{TypeURL: t.typeURL, Version: r.version, Resources: next})
	}
	if err != nil {
		t.rejected.Add(1)
		c.cfg.Logger.Warn("rejecting xDS update", "type", t.typeURL, "version", r.version, "error", err)
		if r.version != t.rejectedVersion {
			t.rejectedVersion, t.nackDelay = r.version, 0
		}
		if t.nackDelay == 0 {
			t.nackDelay = time.Second
			return nil, s.ack(t, r.nonce, err)
		}
		p := &pendingNACK{t: t, nonce: r.nonce, err: err, at: time.Now().Add(t.nackDelay)}
		t.nackDelay = min(2*t.nackDelay, maxNACKDelay)
		return p, nil
	}
	t.accepted.Add(1)
	t.resources, t.version, t.rejectedVersion = next, r.version, ""
	c.cfg.Logger.Debug("accepted xDS update", "type", t.typeURL, "version", r.version, "resources", len(next))
	if err := s.ack(t, r.nonce, nil); err != nil {
		return nil, err
	}
	return nil, c.resubscribe(s)
}

// merge returns the complete set of resources of t after response r, or why r is
// invalid. A SotW response replaces a wildcard type whole; named types and Delta
// responses update what is held. Resources that are not subscribed are ignored.
func (c *Client) merge(t *typeState, r *response) (map[string]Resource, error) {
	if r.err != nil {
		return nil, r.err
	}
	next := map[string]Resource{}
	if r.delta || !t.wildcard {
		for name, res := range t.resources {
			if t.wants(name) {
				next[name] = res
			}
		}
	}
	for _, name := range r.removed {
		delete(next, name)
	}
	for name, res := range r.resources {
		if t.wants(name) {
			next[name] = res
		}
	}
	return next, nil
}

// decode unpacks one resource of typeURL and returns its name.
func decode(typeURL string, a *anypb.Any) (string, proto.Message, error) {
	if a.GetTypeUrl() == "type.googleapis.com/envoy.service.discovery.v3.Resource" {
		wrapped := &discoveryv3.Resource{}
		if err := a.UnmarshalTo(wrapped); err != nil {
			return "", nil, fmt.Errorf("decoding wrapped resource: %w", err)
		}
		a = wrapped.GetResource()
	}
	if a.GetTypeUrl() != typeURL {
		return "", nil, fmt.Errorf("resource of type %s in a %s response", a.GetTypeUrl(), typeURL)
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return "", nil, fmt.Errorf("decoding %s: %w", typeURL, err)
	}
	name := runtime.ResourceName(m)
	if name == "" {
		return "", nil, fmt.Errorf("a %s has no name", typeURL)
	}
	return name, m, nil
}

func versions(t *typeState) map[string]string {
	v := make(map[string]string, len(t.resources))
	for name, r := range t.resources {
		v[name] = r.Version
	}
	return v
}

var errDuplicate = errors.New("duplicate resource name")

func sortedNames(m map[string]bool) []string {
	return slices.Sorted(maps.Keys(m))
}

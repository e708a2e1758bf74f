package xdsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"trellis.dev/trellis/internal/xdsgen"
)

// subscription is a stream's state as go-control-plane's Delta server keeps it.
type subscription struct {
	held       map[string]string
	subscribed map[string]struct{}
	wildcard   bool
}

func (s subscription) ReturnedResources() map[string]string     { return s.held }
func (s subscription) SubscribedResources() map[string]struct{} { return s.subscribed }
func (s subscription) IsWildcard() bool                         { return s.wildcard }

// clusterResources has one cluster per name, whose connect timeout is the given
// number of seconds, and one listener.
func clusterResources(timeouts map[string]int) *xdsgen.Resources {
	res := &xdsgen.Resources{Listeners: []*listenerv3.Listener{{Name: "outbound"}}}
	for name, s := range timeouts {
		res.Clusters = append(res.Clusters, &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Duration(s) * time.Second)})
	}
	slices.SortFunc(res.Clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return res
}

func deltaSnapshot(t testing.TB, sh *sharer, res *xdsgen.Resources) *nodeSnapshot {
	t.Helper()
	snap, err := sh.snapshot(Proxy{Scoped: res})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sent is what a Delta response carries: resource names, and the names removed.
type sent struct {
	Names, Removed []string
}

func receive(t *testing.T, ch chan cachev3.DeltaResponse) *sent {
	t.Helper()
	select {
	case r := <-ch:
		msg, err := r.GetDeltaDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		out := &sent{Removed: msg.GetRemovedResources()}
		for _, res := range msg.GetResources() {
			out.Names = append(out.Names, res.GetName())
		}
		return out
	default:
		return nil
	}
}

func request(node, typeURL, nonce string) *cachev3.DeltaRequest {
	return &cachev3.DeltaRequest{Node: &corev3.Node{Id: node}, TypeUrl: typeURL, ResponseNonce: nonce}
}

// TestDeltaCache checks what a Delta stream is sent: what it lacks of the node's
// snapshot, by wildcard or by name, and nothing when a new snapshot leaves its type
// unchanged.
func TestDeltaCache(t *testing.T) {
	sh := newSharer(pushState{})
	v1 := deltaSnapshot(t, sh, clusterResources(map[string]int{"a": 1, "b": 1, "c": 1}))
	versions := v1.sets[types.Cluster].versions
	sh = newSharer(sh.state())
	// b changed, c removed, d added.
	v2 := deltaSnapshot(t, sh, clusterResources(map[string]int{"a": 1, "b": 2, "d": 1}))

	tests := []struct {
		name  string
		sub   subscription
		nonce string
		snap  *nodeSnapshot
		want  *sent // nil: no response
	}{
		{name: "first wildcard request", sub: subscription{held: map[string]string{}, wildcard: true},
			snap: v1, want: &sent{Names: []string{"a", "b", "c"}}},
		{name: "first wildcard request of an empty type", sub: subscription{held: map[string]string{}, wildcard: true},
			snap: &nodeSnapshot{}, want: &sent{}},
		{name: "ACK of what the snapshot has", sub: subscription{held: versions, wildcard: true},
			nonce: "1", snap: v1},
		{name: "wildcard, snapshot changed", sub: subscription{held: versions, wildcard: true},
			nonce: "1", snap: v2, want: &sent{Names: []string{"b", "d"}, Removed: []string{"c"}}},
		{name: "reconnection with the versions held", sub: subscription{held: versions, wildcard: true},
			snap: v2, want: &sent{Names: []string{"b", "d"}, Removed: []string{"c"}}},
		{name: "by name", sub: subscription{held: map[string]string{"a": versions["a"], "c": versions["c"]},
			subscribed: map[string]struct{}{"a": {}, "c": {}, "d": {}}},
			nonce: "1", snap: v2, want: &sent{Names: []string{"d"}, Removed: []string{"c"}}},
		{name: "by name, nothing new", sub: subscription{held: map[string]string{"a": versions["a"]},
			subscribed: map[string]struct{}{"a": {}, "e": {}}}, nonce: "1", snap: v2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newDeltaCache()
			c.setSnapshot("n", tt.snap)
			ch := make(chan cachev3.DeltaResponse, 1)
			cancel, err := c.CreateDeltaWatch(request("n", resourcev3.ClusterType, tt.nonce), tt.sub, ch)
			if err != nil {
				t.Fatal(err)
			}
			got := receive(t, ch)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			if (cancel == nil) != (got != nil) {
				t.Errorf("CreateDeltaWatch returned a cancel func: %t, want one only when nothing was sent", cancel != nil)
			}
		})
	}
}

// TestDeltaCacheWatch checks that a held watch is answered by the first snapshot
// that changes its type, and only by it, and that nodes share the resources their
// responses carry.
func TestDeltaCacheWatch(t *testing.T) {
	sh := newSharer(pushState{})
	scoped := clusterResources(map[string]int{"a": 1})
	v1 := deltaSnapshot(t, sh, scoped)
	c := newDeltaCache()
	ch := make(chan cachev3.DeltaResponse, 2)
	// Before any snapshot: held.
	if _, err := c.CreateDeltaWatch(request("n", resourcev3.ClusterType, ""), subscription{held: map[string]string{}, wildcard: true}, ch); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, ch); got != nil {
		t.Fatalf("response before any snapshot: %+v", got)
	}
	// A type that snapshots do not have is answered with nothing, once.
	other := make(chan cachev3.DeltaResponse, 2)
	if _, err := c.CreateDeltaWatch(request("n", resourcev3.ScopedRouteType, ""), subscription{held: map[string]string{}, wildcard: true}, other); err != nil {
		t.Fatal(err)
	}
	c.setSnapshot("n", v1)
	if diff := cmp.Diff(&sent{Names: []string{"a"}}, receive(t, ch)); diff != "" {
		t.Fatalf("response to the first snapshot (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&sent{}, receive(t, other)); diff != "" {
		t.Fatalf("response for a type the snapshot lacks (-want +got):\n%s", diff)
	}

	// Up to date: held until the clusters change, not when the listeners do.
	held := v1.sets[types.Cluster].versions
	if _, err := c.CreateDeltaWatch(request("n", resourcev3.ClusterType, "1"), subscription{held: held, wildcard: true}, ch); err != nil {
		t.Fatal(err)
	}
	sh = newSharer(sh.state())
	listenerChanged := &xdsgen.Resources{Listeners: []*listenerv3.Listener{{Name: "outbound", StatPrefix: "x"}}, Clusters: scoped.Clusters}
	c.setSnapshot("n", deltaSnapshot(t, sh, listenerChanged))
	if got := receive(t, ch); got != nil {
		t.Fatalf("response to a snapshot whose clusters are unchanged: %+v", got)
	}
	sh = newSharer(sh.state())
	changed := clusterResources(map[string]int{"a": 2})
	c.setSnapshot("n", deltaSnapshot(t, sh, changed))
	if diff := cmp.Diff(&sent{Names: []string{"a"}}, receive(t, ch)); diff != "" {
		t.Fatalf("response to changed clusters (-want +got):\n%s", diff)
	}
	c.setSnapshot("n", deltaSnapshot(t, sh, clusterResources(map[string]int{"a": 3})))
	if got := receive(t, ch); got != nil {
		t.Fatalf("a watch answered twice: %+v", got)
	}

	// By name: after a response, a request that subscribes to one more name is
	// compared in full although the clusters did not change.
	sh = newSharer(sh.state())
	ab := deltaSnapshot(t, sh, clusterResources(map[string]int{"a": 1, "b": 1}))
	c.setSnapshot("m", ab)
	named := make(chan cachev3.DeltaResponse, 1)
	sub := subscription{held: map[string]string{}, subscribed: map[string]struct{}{"a": {}}}
	if _, err := c.CreateDeltaWatch(request("m", resourcev3.ClusterType, ""), sub, named); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&sent{Names: []string{"a"}}, receive(t, named)); diff != "" {
		t.Fatalf("response by name (-want +got):\n%s", diff)
	}
	sub = subscription{held: map[string]string{"a": ab.sets[types.Cluster].versions["a"], "b": ""},
		subscribed: map[string]struct{}{"a": {}, "b": {}}}
	more := request("m", resourcev3.ClusterType, "1")
	more.ResourceNamesSubscribe = []string{"b"}
	if _, err := c.CreateDeltaWatch(more, sub, named); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&sent{Names: []string{"b"}}, receive(t, named)); diff != "" {
		t.Fatalf("response to a new subscription (-want +got):\n%s", diff)
	}

	// It holds a and b now, and subscribes to them only: a new snapshot where a
	// changed, b is gone and c appeared sends a and removes b, not c.
	abVersions := ab.sets[types.Cluster].versions
	sub = subscription{held: map[string]string{"a": abVersions["a"], "b": abVersions["b"]},
		subscribed: map[string]struct{}{"a": {}, "b": {}}}
	if _, err := c.CreateDeltaWatch(request("m", resourcev3.ClusterType, "2"), sub, named); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, named); got != nil {
		t.Fatalf("response to an ACK of the current version: %+v", got)
	}
	sh = newSharer(sh.state())
	c.setSnapshot("m", deltaSnapshot(t, sh, clusterResources(map[string]int{"a": 2, "c": 1})))
	if diff := cmp.Diff(&sent{Names: []string{"a"}, Removed: []string{"b"}}, receive(t, named)); diff != "" {
		t.Fatalf("response by name to a changed snapshot (-want +got):\n%s", diff)
	}
	if len(c.diffs) == 0 {
		t.Errorf("the responses to streams known to hold a typeSet were not computed as shared differences")
	}

	// Two nodes of a scope are sent the same resource message, whose bytes are the
	// cluster's serialization.
	sh = newSharer(sh.state())
	snap := deltaSnapshot(t, sh, changed)
	var msgs []*discoveryv3.DeltaDiscoveryResponse
	for _, node := range []string{"x", "y"} {
		c.setSnapshot(node, snap)
		out := make(chan cachev3.DeltaResponse, 1)
		if _, err := c.CreateDeltaWatch(request(node, resourcev3.ClusterType, ""), subscription{held: map[string]string{}, wildcard: true}, out); err != nil {
			t.Fatal(err)
		}
		msg, err := (<-out).GetDeltaDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msg)
	}
	x, y := msgs[0], msgs[1]
	if x == y || x.Resources[0] != y.Resources[0] {
		t.Errorf("responses share their message: %t, their resource: %t; want separate messages sharing the resource", x == y, x.Resources[0] == y.Resources[0])
	}
	var got clusterv3.Cluster
	if err := x.Resources[0].GetResource().UnmarshalTo(&got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, changed.Clusters[0]) {
		t.Errorf("cluster sent = %v, want %v", &got, changed.Clusters[0])
	}
	if x.Resources[0].GetVersion() != snap.sets[types.Cluster].versions["a"] {
		t.Errorf("resource version %q, want the snapshot's %q", x.Resources[0].GetVersion(), snap.sets[types.Cluster].versions["a"])
	}
}

// BenchmarkDeltaPush sets a new snapshot on 1,000 nodes of one scope, each with a
// Delta stream holding its 40 clusters (wildcard) and their 40 assignments (by name),
// where each push changes one assignment; each stream applies and ACKs its response.
func BenchmarkDeltaPush(b *testing.B) {
	const nodes, services = 1000, 40
	resources := func(i int) *xdsgen.Resources {
		res := &xdsgen.Resources{}
		for s := range services {
			name := fmt.Sprintf("outbound|8080||svc-%04d.ns-00.svc.cluster.local", s)
			res.Clusters = append(res.Clusters, &clusterv3.Cluster{Name: name})
			cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
			if s == 0 {
				cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{Priority: uint32(i)}}
			}
			res.Endpoints = append(res.Endpoints, cla)
		}
		return res
	}
	type stream struct {
		ch   chan cachev3.DeltaResponse
		subs map[string]*subscription
	}
	c := newDeltaCache()
	sh := newSharer(pushState{})
	snap := deltaSnapshot(b, sh, resources(0))
	streams := make([]*stream, nodes)
	apply := func(st *stream) {
		for {
			select {
			case r := <-st.ch:
				typeURL := r.GetDeltaRequest().GetTypeUrl()
				st.subs[typeURL].held = r.GetReturnedResources()
				if _, err := c.CreateDeltaWatch(&cachev3.DeltaRequest{Node: r.GetDeltaRequest().GetNode(), TypeUrl: typeURL, ResponseNonce: "n"},
					*st.subs[typeURL], st.ch); err != nil {
					b.Fatal(err)
				}
			default:
				return
			}
		}
	}
	names := map[string]struct{}{}
	for _, r := range snap.sets[types.Endpoint].delta {
		names[r.Name] = struct{}{}
	}
	for i := range streams {
		node := &corev3.Node{Id: fmt.Sprintf("n%d", i)}
		c.setSnapshot(node.Id, snap)
		st := &stream{ch: make(chan cachev3.DeltaResponse, 10), subs: map[string]*subscription{
			resourcev3.ClusterType:  {held: map[string]string{}, wildcard: true},
			resourcev3.EndpointType: {held: map[string]string{}, subscribed: names},
		}}
		streams[i] = st
		for _, typeURL := range []string{resourcev3.ClusterType, resourcev3.EndpointType} {
			if _, err := c.CreateDeltaWatch(&cachev3.DeltaRequest{Node: node, TypeUrl: typeURL}, *st.subs[typeURL], st.ch); err != nil {
				b.Fatal(err)
			}
		}
		apply(st)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		sh = newSharer(sh.state())
		snap := deltaSnapshot(b, sh, resources(i+1))
		for n, st := range streams {
			c.setSnapshot(fmt.Sprintf("n%d", n), snap)
			apply(st)
		}
	}
}

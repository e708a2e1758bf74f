package xdsserver

import (
	"context"
	"reflect"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/xdsgen"
)

// TestPushProxiesShares pushes two nodes of one scope: they share one set of
// clusters and endpoints (the same maps), a push of equal resources in new objects
// changes nothing, and a changed assignment changes the endpoints' version only.
func TestPushProxiesShares(t *testing.T) {
	s, err := New(Config{Registry: registry.New(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	scoped := func(port uint32) *xdsgen.Resources {
		return &xdsgen.Resources{
			Clusters: []*clusterv3.Cluster{{Name: "outbound|80||a.default.svc.cluster.local"}},
			Endpoints: []*endpointv3.ClusterLoadAssignment{{ClusterName: "outbound|80||a.default.svc.cluster.local",
				Endpoints: []*endpointv3.LocalityLbEndpoints{{Priority: port}}}},
		}
	}
	own := func(name string) *xdsgen.Resources {
		return &xdsgen.Resources{Listeners: []*listenerv3.Listener{{Name: name}}}
	}
	push := func(sc *xdsgen.Resources) []string {
		t.Helper()
		changed, err := s.PushProxies(context.Background(), map[string]Proxy{
			"a.default": {Scoped: sc, Own: own("inbound|8080")},
			"b.default": {Scoped: sc, Own: own("inbound|9090")},
		})
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	snap := func(node string) *nodeSnapshot {
		t.Helper()
		sn, err := s.cache.getSnapshot(node)
		if err != nil {
			t.Fatal(err)
		}
		return sn.(*nodeSnapshot)
	}

	if diff := cmp.Diff([]string{"a.default", "b.default"}, push(scoped(1))); diff != "" {
		t.Errorf("first push: changed nodes (-want +got):\n%s", diff)
	}
	a, b := snap("a.default"), snap("b.default")
	for _, typ := range []string{resourcev3.ClusterType, resourcev3.EndpointType} {
		if reflect.ValueOf(a.GetResources(typ)).Pointer() != reflect.ValueOf(b.GetResources(typ)).Pointer() {
			t.Errorf("%s: the nodes of a scope do not share one set", typ)
		}
	}
	if a.GetVersion(resourcev3.ListenerType) == b.GetVersion(resourcev3.ListenerType) {
		t.Errorf("different listeners, same version %q", a.GetVersion(resourcev3.ListenerType))
	}
	// The cache holds the serialized resource: its bytes are the cluster's.
	got, err := proto.Marshal(a.GetResources(resourcev3.ClusterType)["outbound|80||a.default.svc.cluster.local"])
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(scoped(1).Clusters[0])
	if !reflect.DeepEqual(got, want) {
		t.Errorf("serialized cluster = %x, want %x", got, want)
	}

	if changed := push(scoped(1)); len(changed) != 0 {
		t.Errorf("equal resources in new objects: changed nodes %v, want none", changed)
	}
	before := a.versions()
	if diff := cmp.Diff([]string{"a.default", "b.default"}, push(scoped(2))); diff != "" {
		t.Errorf("changed assignment: changed nodes (-want +got):\n%s", diff)
	}
	after := snap("a.default").versions()
	for _, typ := range resourceTypes {
		if changed := before[typ] != after[typ]; changed != (typ == types.Endpoint) {
			t.Errorf("type %d: version changed %t", typ, changed)
		}
	}
}

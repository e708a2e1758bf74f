package runtime

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// withMetadata gives every endpoint of cla the metadata filter_metadata[key] = fields.
func withMetadata(cla *endpointv3.ClusterLoadAssignment, key string, fields map[string]any) *endpointv3.ClusterLoadAssignment {
	st, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err)
	}
	for _, lbe := range cla.Endpoints[0].LbEndpoints {
		lbe.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{key: st}}
	}
	return cla
}

func TestEndpointMetadata(t *testing.T) {
	const c = "outbound|80||reviews.default.svc.cluster.local"
	tests := []struct {
		name    string
		cla     *endpointv3.ClusterLoadAssignment
		wantErr string // a part of the NACK; "" when valid
		want    map[string]*reqinfo.Peer
	}{
		{name: "workload metadata",
			cla: withMetadata(xdstest.Assignment(c, "127.0.0.1:9080"), "trellis", map[string]any{
				"workload": "reviews-v2", "namespace": "default", "app": "reviews", "version": "v2", "principal": "spiffe://cluster.local/ns/default/sa/reviews"}),
			want: map[string]*reqinfo.Peer{"127.0.0.1:9080": {Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2",
				Principal: "spiffe://cluster.local/ns/default/sa/reviews"}}},
		{name: "none", cla: xdstest.Assignment(c, "127.0.0.1:9080")},
		{name: "another key", cla: withMetadata(xdstest.Assignment(c, "127.0.0.1:9080"), "istio", map[string]any{"workload": "x"}),
			wantErr: `endpoints[0].lb_endpoints[0].metadata.filter_metadata: key "istio" is not supported`},
		{name: "another field", cla: withMetadata(xdstest.Assignment(c, "127.0.0.1:9080"), "trellis", map[string]any{"zone": "x"}),
			wantErr: `filter_metadata["trellis"].zone: is not supported`},
		{name: "not a string", cla: withMetadata(xdstest.Assignment(c, "127.0.0.1:9080"), "trellis", map[string]any{"version": 2}),
			wantErr: `filter_metadata["trellis"].fields["version"].number_value: is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(EndpointType, map[string]proto.Message{c: tt.cla})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			table, err := Build(Resources{
				Listeners: map[string]*listenerv3.Listener{"up": xdstest.TCPListener("up", "127.0.0.1:19000", c)},
				Clusters:  map[string]*clusterv3.Cluster{c: xdstest.EDSCluster(c, false)},
				Endpoints: map[string]*endpointv3.ClusterLoadAssignment{c: tt.cla},
			})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if diff := cmp.Diff(tt.want, table.Clusters[c].Peers); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListenerDirection(t *testing.T) {
	const c = "inbound|9000||"
	in := xdstest.TCPListener("inbound|9000", "127.0.0.1:19001", c)
	in.TrafficDirection = corev3.TrafficDirection_INBOUND
	out := xdstest.TCPListener("out", "127.0.0.1:19002", c)
	out.TrafficDirection = corev3.TrafficDirection_OUTBOUND
	table, err := Build(Resources{
		Listeners: map[string]*listenerv3.Listener{"inbound|9000": in, "out": out, "unset": xdstest.TCPListener("unset", "127.0.0.1:19003", c)},
		Clusters:  map[string]*clusterv3.Cluster{c: xdstest.StaticCluster(c, false, "127.0.0.1:9000")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for name, l := range table.Listeners {
		got[name] = l.Inbound
	}
	if diff := cmp.Diff(map[string]bool{"inbound|9000": true, "out": false, "unset": false}, got); diff != "" {
		t.Errorf("Inbound (-want +got):\n%s", diff)
	}
}

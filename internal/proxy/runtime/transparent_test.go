package runtime

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

func TestValidateTransparent(t *testing.T) {
	tests := []struct {
		name    string
		typeURL string
		res     proto.Message
		want    string // substring of the error; "" for valid
	}{
		{name: "capture listener", typeURL: ListenerType, res: xdstest.CaptureListener("virtualOutbound", "0.0.0.0:15001", "PassthroughCluster")},
		{name: "unbound listener", typeURL: ListenerType, res: xdstest.Unbound(xdstest.HTTPListener("10.96.0.10_80", "10.96.0.10:80", "outbound"))},
		{name: "passthrough cluster", typeURL: ClusterType, res: xdstest.PassthroughCluster()},
		{name: "black hole cluster", typeURL: ClusterType, res: xdstest.BlackHoleCluster()},
		{
			name: "unbound capture listener", typeURL: ListenerType,
			res:  xdstest.Unbound(xdstest.CaptureListener("virtualOutbound", "0.0.0.0:15001", "PassthroughCluster")),
			want: `use_original_dst: a listener that is not bound`,
		},
		{
			name: "original_dst filter config", typeURL: ListenerType,
			res: func() proto.Message {
				l := xdstest.CaptureListener("virtualOutbound", "0.0.0.0:15001", "PassthroughCluster")
				l.ListenerFilters[0].ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: xdstest.MustAny(wrapperspb.String("x"))}
				return l
			}(),
			want: `listener_filters[0].typed_config: type "type.googleapis.com/google.protobuf.StringValue" is not supported`,
		},
		{
			name: "original_dst with round robin", typeURL: ClusterType,
			res: func() proto.Message {
				c := xdstest.PassthroughCluster()
				c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
				return c
			}(),
			want: `lb_policy: ROUND_ROBIN is not supported by an ORIGINAL_DST cluster (want CLUSTER_PROVIDED)`,
		},
		{
			name: "original_dst with endpoints", typeURL: ClusterType,
			res: func() proto.Message {
				c := xdstest.PassthroughCluster()
				c.LoadAssignment = xdstest.Assignment("PassthroughCluster", "127.0.0.1:1")
				return c
			}(),
			want: `load_assignment: is not used by an ORIGINAL_DST cluster`,
		},
		{
			name: "cluster provided elsewhere", typeURL: ClusterType,
			res: func() proto.Message {
				c := xdstest.StaticCluster("c", false, "127.0.0.1:1")
				c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
				return c
			}(),
			want: `lb_policy: CLUSTER_PROVIDED is not supported`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.typeURL, one(tt.res))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBuildTransparent(t *testing.T) {
	res := Resources{
		Listeners: map[string]*listenerv3.Listener{
			"virtualOutbound": xdstest.CaptureListener("virtualOutbound", "0.0.0.0:15001", "PassthroughCluster"),
			"10.96.0.10_9000": xdstest.Unbound(xdstest.TCPListener("10.96.0.10_9000", "10.96.0.10:9000", "BlackHoleCluster")),
		},
		Clusters: map[string]*clusterv3.Cluster{
			"PassthroughCluster": xdstest.PassthroughCluster(),
			"BlackHoleCluster":   xdstest.BlackHoleCluster(),
		},
	}
	table, err := Build(res)
	if err != nil {
		t.Fatal(err)
	}
	capture, virtual := table.ListenerAt("0.0.0.0:15001"), table.ListenerAt("10.96.0.10:9000")
	if capture == nil || !capture.UseOriginalDst || !capture.OriginalDst || capture.Virtual {
		t.Errorf("capture listener = %+v, want UseOriginalDst, OriginalDst, bound", capture)
	}
	if virtual == nil || !virtual.Virtual || virtual.UseOriginalDst {
		t.Errorf("unbound listener = %+v, want Virtual", virtual)
	}
	if c := table.Clusters["PassthroughCluster"]; !c.OriginalDst || len(c.Endpoints) != 0 {
		t.Errorf("PassthroughCluster = %+v, want OriginalDst without endpoints", c)
	}
	if c := table.Clusters["BlackHoleCluster"]; c.OriginalDst || len(c.Endpoints) != 0 {
		t.Errorf("BlackHoleCluster = %+v, want no endpoints", c)
	}
	// Only bound listeners are bound.
	addrs := ListenerAddresses(res.Listeners)
	if _, ok := addrs["10.96.0.10:9000"]; ok || addrs["0.0.0.0:15001"] != "virtualOutbound" {
		t.Errorf("ListenerAddresses = %v, want only the capture listener", addrs)
	}
	dst := netip.MustParseAddrPort("10.1.2.3:80")
	if got, ok := OriginalDstFrom(WithOriginalDst(context.Background(), dst)); !ok || got != dst {
		t.Errorf("OriginalDstFrom = %v, %v, want %v", got, ok, dst)
	}
	if _, ok := OriginalDstFrom(context.Background()); ok {
		t.Errorf("OriginalDstFrom(no destination) reports one")
	}
}

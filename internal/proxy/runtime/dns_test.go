package runtime

import (
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// withDNS is a capture listener carrying the DNS table hosts (a value that is not a
// list of strings is given as is).
func withDNS(t *testing.T, l *listenerv3.Listener, key string, hosts map[string]any) *listenerv3.Listener {
	t.Helper()
	s, err := structpb.NewStruct(hosts)
	if err != nil {
		t.Fatal(err)
	}
	l.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{key: s}}
	return l
}

func TestDNSTable(t *testing.T) {
	capture := func() *listenerv3.Listener {
		return xdstest.CaptureListener("virtualOutbound", "0.0.0.0:15001", "PassthroughCluster")
	}
	tests := []struct {
		name string
		l    *listenerv3.Listener
		want string // substring of the error; "" for valid
	}{
		{name: "table", l: withDNS(t, capture(), DNSMetadataKey, map[string]any{"echo.default.svc.cluster.local": []any{"10.96.0.10"}, "echo": []any{"10.96.0.10", "fd00::10"}})},
		{name: "other key", l: withDNS(t, capture(), "trellis", map[string]any{"echo": []any{"10.96.0.10"}}),
			want: `metadata.filter_metadata[trellis]: is not supported (only "trellis.dns", the DNS table)`},
		{name: "not a capture listener", l: withDNS(t, xdstest.TCPListener("l", "127.0.0.1:9000", "c"), DNSMetadataKey, map[string]any{"echo": []any{"10.96.0.10"}}),
			want: `metadata: is only accepted on a capture listener`},
		{name: "bad address", l: withDNS(t, capture(), DNSMetadataKey, map[string]any{"echo": []any{"10.96.0.300"}}),
			want: `metadata.filter_metadata[trellis.dns][echo]: "10.96.0.300" is not an IP address`},
		{name: "bad host", l: withDNS(t, capture(), DNSMetadataKey, map[string]any{"a..b": []any{"10.96.0.1"}}),
			want: `"a..b" is not a DNS name`},
		{name: "empty list", l: withDNS(t, capture(), DNSMetadataKey, map[string]any{"echo": []any{}}),
			want: `want a non-empty list of IP addresses`},
		{name: "string, not a list", l: withDNS(t, capture(), DNSMetadataKey, map[string]any{"echo": "10.96.0.10"}),
			want: `metadata.filter_metadata["trellis.dns"].fields["echo"].string_value: is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(ListenerType, one(tt.l))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate error = %v, want one containing %q", err, tt.want)
			}
		})
	}

	table, err := Build(Resources{
		Listeners: map[string]*listenerv3.Listener{"virtualOutbound": tests[0].l},
		Clusters:  map[string]*clusterv3.Cluster{"PassthroughCluster": xdstest.PassthroughCluster()},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]netip.Addr{
		"echo.default.svc.cluster.local": {netip.MustParseAddr("10.96.0.10")},
		"echo":                           {netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00::10")},
	}
	if diff := cmp.Diff(want, table.DNS, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("table.DNS (-want +got):\n%s", diff)
	}
}

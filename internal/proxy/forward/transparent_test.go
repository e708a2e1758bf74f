package forward

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// TestTCPOriginalDst checks that a TCP proxy to an ORIGINAL_DST cluster connects to
// the connection's original destination, and one to an endpoint-less cluster (or
// without a destination) closes the connection.
func TestTCPOriginalDst(t *testing.T) {
	target := tcpNamed(t, "original")
	clusters := []*clusterv3.Cluster{xdstest.PassthroughCluster(), xdstest.BlackHoleCluster()}
	res := runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{
			"pass":  xdstest.CaptureListener("pass", "127.0.0.1:15001", "PassthroughCluster"),
			"black": xdstest.CaptureListener("black", "127.0.0.1:15002", "BlackHoleCluster"),
		},
		Clusters: map[string]*clusterv3.Cluster{},
	}
	for _, c := range clusters {
		res.Clusters[c.Name] = c
	}
	table, err := runtime.Build(res)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, []*routev3.Route{}, clusters...)
	up := &Upstreams{logger: slog.New(slog.DiscardHandler), clusters: h.clusters, stats: h.stats, pools: map[upstreamKey]*upstream{}}
	up.Attach(table)
	p := &TCP{Stats: h.stats, Logger: slog.New(slog.DiscardHandler)}

	tests := []struct {
		name     string
		listener string
		dst      string // "" for none known
		want     string
	}{
		{name: "passthrough", listener: "127.0.0.1:15001", dst: target, want: "original"},
		{name: "passthrough without destination", listener: "127.0.0.1:15001"},
		{name: "black hole", listener: "127.0.0.1:15002", dst: target},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.dst != "" {
				ctx = runtime.WithOriginalDst(ctx, netip.MustParseAddrPort(tt.dst))
			}
			client, server := net.Pipe()
			defer client.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.Serve(ctx, server, table.ListenerAt(tt.listener))
			}()
			client.SetDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(client)
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			client.Close()
			<-done
		})
	}
}

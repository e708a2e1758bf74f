package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/telemetry/tracing"
)

// BenchmarkRequest is the telemetry's cost per request on the hot path: Start and
// Record of an inbound request carrying the peer header, with metrics only (the
// default), with the access log, and with tracing (sampled, not exported).
func BenchmarkRequest(b *testing.B) {
	self := reqinfo.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2"}
	peer := []string{EncodePeer(reqinfo.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1"})}
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{name: "metrics", cfg: Config{}},
		{name: "metrics+accesslog", cfg: Config{AccessLog: io.Discard}},
		{name: "metrics+tracing", cfg: Config{Tracing: &tracing.Config{Sampling: 100, ServiceName: "reviews.default"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := bc.cfg
			cfg.Self, cfg.Service, cfg.Logger = self, "reviews.default.svc.cluster.local", slog.New(slog.DiscardHandler)
			tel, err := New(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Close(context.Background())
			r := httptest.NewRequest("GET", "http://reviews:9080/reviews/1", nil)
			b.ReportAllocs()
			for b.Loop() {
				r.Header[reqinfo.PeerHeader] = peer
				info := reqinfo.Info{Start: time.Now(), Code: 200, Cluster: "inbound|9080||", Host: "127.0.0.1:9080"}
				info.Telemetry.Inbound = true
				tel.Start(r, &info)
				info.Duration = time.Millisecond
				tel.Record(&info)
			}
		})
	}
}

package ratelimit_test

import (
	"context"
	"fmt"
	"testing"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"trellis.dev/trellis/internal/ratelimit"
	"trellis.dev/trellis/internal/ratelimit/policy"
)

// BenchmarkCheck is the cost of one global check of one descriptor, in process
// (ShouldRateLimit called directly) and over gRPC on loopback, with each store. The
// limit is never reached: 1000 clients, each with its own counter.
func BenchmarkCheck(b *testing.B) {
	for _, kind := range storeKinds {
		b.Run(kind.name, func(b *testing.B) {
			newStore, _ := kind.start(b)
			r := startRLS(b, ratelimit.Config{Store: newStore()})
			reqs := make([]*rlsv3.RateLimitRequest, 1000)
			for i := range reqs {
				reqs[i] = request(b, "shop/checkout/5", user(fmt.Sprint("user-", i)), "")
			}
			ctx := context.Background()
			b.Run("direct", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					resp, err := r.srv.ShouldRateLimit(ctx, reqs[i%len(reqs)])
					if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
						b.Fatalf("ShouldRateLimit: %v, %v", resp, err)
					}
					i++
				}
			})
			b.Run("grpc", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := r.client.ShouldRateLimit(ctx, reqs[i%len(reqs)]); err != nil {
						b.Fatalf("ShouldRateLimit: %v", err)
					}
					i++
				}
			})
		})
	}
}

// BenchmarkDescriptor is a proxy's side of a global check: matching a rule and building
// its descriptor entries.
func BenchmarkDescriptor(b *testing.B) {
	table, err := policy.Compile(testPolicies(b))
	if err != nil {
		b.Fatal(err)
	}
	rule := table.Rule("shop/checkout/1")
	req := &policy.Request{Method: "GET", Path: "/cart", Header: user("alice")}
	buf := make([]policy.Entry, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rule.AppendDescriptor(buf[:0], req); !ok {
			b.Fatal("no descriptor")
		}
	}
}

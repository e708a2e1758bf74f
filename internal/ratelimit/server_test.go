package ratelimit_test

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/ratelimit"
	"trellis.dev/trellis/internal/ratelimit/memstore"
	"trellis.dev/trellis/internal/ratelimit/policy"
)

const (
	OK        = rlsv3.RateLimitResponse_OK
	OverLimit = rlsv3.RateLimitResponse_OVER_LIMIT
)

// TestGlobalLimit: a 10/minute limit per x-user lets exactly 10 of alice's requests
// through, refuses her 11th with the headers, gives bob his own budget, and lets alice
// in again in the next window.
func TestGlobalLimit(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			newStore, _ := kind.start(t)
			clock := newFakeClock() // 10s into a minute: 50s until the window resets
			reg := prometheus.NewRegistry()
			r := startRLS(t, ratelimit.Config{Store: newStore(), Now: clock.now, Registry: reg})
			alice := request(t, "shop/checkout/1", user("alice"), "")

			var remaining []uint32
			for range 10 {
				resp := check(t, r.client, alice)
				if resp.OverallCode != OK {
					t.Fatalf("request %d refused: %v", len(remaining)+1, resp)
				}
				remaining = append(remaining, resp.Statuses[0].LimitRemaining)
			}
			if diff := cmp.Diff([]uint32{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, remaining); diff != "" {
				t.Errorf("limit_remaining (-want +got):\n%s", diff)
			}

			clock.advance(5 * time.Second)
			resp := check(t, r.client, alice)
			want := &rlsv3.RateLimitResponse{
				OverallCode: OverLimit,
				Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{
					Code: OverLimit,
					CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{
						Name: "shop/checkout/1", RequestsPerUnit: 10, Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE,
					},
					DurationUntilReset: durationpb.New(45 * time.Second),
				}},
			}
			if diff := cmp.Diff(want, resp, protocmp.Transform(), protocmp.IgnoreFields(&rlsv3.RateLimitResponse{}, "response_headers_to_add")); diff != "" {
				t.Errorf("11th request (-want +got):\n%s", diff)
			}
			wantHeaders := map[string]string{"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "45", "retry-after": "45"}
			if diff := cmp.Diff(wantHeaders, headers(resp)); diff != "" {
				t.Errorf("11th request's headers (-want +got):\n%s", diff)
			}

			resp = check(t, r.client, request(t, "shop/checkout/1", user("bob"), ""))
			if resp.OverallCode != OK || resp.Statuses[0].LimitRemaining != 9 {
				t.Errorf("bob's first request: %v, want OK with 9 remaining", resp)
			}
			wantHeaders = map[string]string{"x-ratelimit-limit": "10", "x-ratelimit-remaining": "9", "x-ratelimit-reset": "45"}
			if diff := cmp.Diff(wantHeaders, headers(resp)); diff != "" {
				t.Errorf("bob's headers (-want +got):\n%s", diff)
			}

			clock.advance(45 * time.Second) // the next window
			resp = check(t, r.client, alice)
			if resp.OverallCode != OK || resp.Statuses[0].LimitRemaining != 9 {
				t.Errorf("alice in the next window: %v, want OK with 9 remaining", resp)
			}
			if resp.Statuses[0].DurationUntilReset.AsDuration() != time.Minute {
				t.Errorf("duration_until_reset at the start of a window = %v, want 1m", resp.Statuses[0].DurationUntilReset.AsDuration())
			}

			wantCounts := map[string]float64{"trellis OK": 12, "trellis OVER_LIMIT": 1}
			if diff := cmp.Diff(wantCounts, decisions(t, reg)); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReplicasShareBudget: two proxies of one service (two connections) ask
// concurrently, and, with Redis, through two replicas of the service: together they let
// exactly 10 requests of one client through.
func TestReplicasShareBudget(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			newStore, _ := kind.start(t)
			clock := newFakeClock()
			first := startRLS(t, ratelimit.Config{Store: newStore(), Now: clock.now})
			clients := []rlsv3.RateLimitServiceClient{first.client, dial(t, first.addr)}
			if kind.name == "redis" {
				second := startRLS(t, ratelimit.Config{Store: newStore(), Now: clock.now})
				clients = append(clients, second.client, dial(t, second.addr))
			}
			alice := request(t, "shop/checkout/1", user("alice"), "")
			var allowed, refused atomic.Int32
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Go(func() {
					for range 10 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						resp, err := c.ShouldRateLimit(ctx, alice)
						cancel()
						switch {
						case err != nil:
							t.Errorf("ShouldRateLimit: %v", err)
							return
						case resp.OverallCode == OK:
							allowed.Add(1)
						default:
							refused.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if got, want := allowed.Load(), int32(10); got != want {
				t.Errorf("%d requests allowed, want %d", got, want)
			}
			if got, want := refused.Load(), int32(10*len(clients)-10); got != want {
				t.Errorf("%d requests refused, want %d", got, want)
			}
		})
	}
}

func TestShadowNeverRefuses(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			newStore, _ := kind.start(t)
			reg := prometheus.NewRegistry()
			r := startRLS(t, ratelimit.Config{Store: newStore(), Now: newFakeClock().now, Registry: reg})
			req := request(t, "shop/checkout/2", nil, "")
			for i := range 5 {
				resp := check(t, r.client, req)
				if resp.OverallCode != OK || resp.Statuses[0].Code != OK {
					t.Fatalf("request %d of a shadow rule: %v, want OK", i+1, resp)
				}
				if len(resp.ResponseHeadersToAdd) != 0 {
					t.Errorf("a shadow rule added headers: %v", resp.ResponseHeadersToAdd)
				}
			}
			want := map[string]float64{"trellis OK": 2, "trellis SHADOW": 3}
			if diff := cmp.Diff(want, decisions(t, reg)); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDescriptors(t *testing.T) {
	frontend := "cluster.local/ns/shop/sa/frontend"
	tests := []struct {
		name string
		req  func(t *testing.T) *rlsv3.RateLimitRequest
		want []*rlsv3.RateLimitResponse_DescriptorStatus
		// headers are the response headers expected
		headers map[string]string
	}{
		{
			name: "hits_addend counts several hits",
			req: func(t *testing.T) *rlsv3.RateLimitRequest {
				r := request(t, "shop/checkout/1", user("carol"), "")
				r.HitsAddend = 4
				return r
			},
			want:    []*rlsv3.RateLimitResponse_DescriptorStatus{dstatus(OK, "shop/checkout/1", 10, rlsv3.RateLimitResponse_RateLimit_MINUTE, 6, 50*time.Second)},
			headers: map[string]string{"x-ratelimit-limit": "10", "x-ratelimit-remaining": "6", "x-ratelimit-reset": "50"},
		},
		{
			name: "a descriptor's hits_addend wins over the request's",
			req: func(t *testing.T) *rlsv3.RateLimitRequest {
				r := request(t, "shop/checkout/1", user("dave"), "")
				r.HitsAddend = 4
				r.Descriptors[0].HitsAddend = wrapperspb.UInt64(11)
				return r
			},
			want:    []*rlsv3.RateLimitResponse_DescriptorStatus{dstatus(OverLimit, "shop/checkout/1", 10, rlsv3.RateLimitResponse_RateLimit_MINUTE, 0, 50*time.Second)},
			headers: map[string]string{"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "50", "retry-after": "50"},
		},
		{
			name: "principal and exact header",
			req: func(t *testing.T) *rlsv3.RateLimitRequest {
				r := request(t, "shop/checkout/3", nil, frontend)
				r.Descriptors = append(r.Descriptors, request(t, "shop/checkout/4", http.Header{"X-Tier": {"gold"}}, "").Descriptors...)
				return r
			},
			want: []*rlsv3.RateLimitResponse_DescriptorStatus{
				dstatus(OK, "shop/checkout/3", 3, rlsv3.RateLimitResponse_RateLimit_HOUR, 2, 56*time.Minute-10*time.Second),
				dstatus(OK, "shop/checkout/4", 5, rlsv3.RateLimitResponse_RateLimit_SECOND, 4, time.Second),
			},
			// the fewest requests left: rule 3
			headers: map[string]string{"x-ratelimit-limit": "3", "x-ratelimit-remaining": "2", "x-ratelimit-reset": "3350"},
		},
		{
			name: "unknown descriptors have no limit",
			req: func(t *testing.T) *rlsv3.RateLimitRequest {
				return &rlsv3.RateLimitRequest{Domain: policy.DefaultDomain, Descriptors: []*commonrlv3.RateLimitDescriptor{
					descriptor(policy.Entry{Key: "policy", Value: "shop/nope/0"}),
					descriptor(policy.Entry{Key: "policy", Value: "shop/checkout/0"}), // a Local rule
					descriptor(policy.Entry{Key: "policy", Value: "shop/checkout/1"}), // no x-user entry
					descriptor(policy.Entry{Key: "policy", Value: "shop/checkout/3"}, policy.Entry{Key: "source.principal", Value: "cluster.local/ns/x/sa/y"}),
					descriptor(policy.Entry{Key: "policy", Value: "shop/checkout/4"}, policy.Entry{Key: "header.x-tier", Value: "silver"}),
					descriptor(policy.Entry{Key: "generic_key", Value: "x"}),
				}}
			},
			want: []*rlsv3.RateLimitResponse_DescriptorStatus{{Code: OK}, {Code: OK}, {Code: OK}, {Code: OK}, {Code: OK}, {Code: OK}},
		},
		{
			name: "another domain has no limit",
			req: func(t *testing.T) *rlsv3.RateLimitRequest {
				r := request(t, "shop/checkout/1", user("erin"), "")
				r.Domain = "envoy"
				return r
			},
			want: []*rlsv3.RateLimitResponse_DescriptorStatus{{Code: OK}},
		},
	}
	r := startRLS(t, ratelimit.Config{Store: memstore.New(), Now: newFakeClock().now})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := check(t, r.client, tt.req(t))
			if diff := cmp.Diff(tt.want, resp.Statuses, protocmp.Transform()); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			if tt.headers == nil {
				tt.headers = map[string]string{}
			}
			if diff := cmp.Diff(tt.headers, headers(resp)); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func dstatus(code rlsv3.RateLimitResponse_Code, name string, requests uint32, unit rlsv3.RateLimitResponse_RateLimit_Unit, remaining uint32, reset time.Duration) *rlsv3.RateLimitResponse_DescriptorStatus {
	return &rlsv3.RateLimitResponse_DescriptorStatus{
		Code:               code,
		CurrentLimit:       &rlsv3.RateLimitResponse_RateLimit{Name: name, RequestsPerUnit: requests, Unit: unit},
		LimitRemaining:     remaining,
		DurationUntilReset: durationpb.New(reset),
	}
}

func TestInvalidRequests(t *testing.T) {
	r := startRLS(t, ratelimit.Config{Store: memstore.New()})
	tests := []struct {
		name string
		req  *rlsv3.RateLimitRequest
	}{
		{name: "no domain", req: &rlsv3.RateLimitRequest{Descriptors: []*commonrlv3.RateLimitDescriptor{descriptor(policy.Entry{Key: "a", Value: "b"})}}},
		{name: "no descriptors", req: &rlsv3.RateLimitRequest{Domain: "trellis"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := r.client.ShouldRateLimit(ctx, tt.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("error %v, want InvalidArgument", err)
			}
		})
	}
}

// TestRedisDown stops Redis under a server: fail open lets requests through and counts
// errors, fail closed refuses them; the outage is logged once, and the recovery.
func TestRedisDown(t *testing.T) {
	tests := []struct {
		name     string
		mode     ratelimit.FailureMode
		wantCode rlsv3.RateLimitResponse_Code
	}{
		{name: "open", mode: ratelimit.FailOpen, wantCode: OK},
		{name: "closed", mode: ratelimit.FailClosed, wantCode: OverLimit},
	}
	redisKind := storeKinds[1]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newStore, redis := redisKind.start(t)
			reg := prometheus.NewRegistry()
			logs := &logCounter{}
			r := startRLS(t, ratelimit.Config{
				Store: newStore(), Now: newFakeClock().now, Registry: reg,
				FailureMode: tt.mode, Logger: slog.New(logs),
			})
			alice := request(t, "shop/checkout/1", user("alice"), "")
			for range 3 {
				check(t, r.client, alice)
			}
			redis.Stop()
			for i := range 5 {
				start := time.Now()
				resp := check(t, r.client, alice)
				if resp.OverallCode != tt.wantCode || resp.Statuses[0].Code != tt.wantCode {
					t.Errorf("request %d with Redis stopped: %v, want %v", i+1, resp, tt.wantCode)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("request %d with Redis stopped took %v", i+1, took)
				}
			}
			want := map[string]float64{"trellis OK": 3, "trellis ERROR": 5}
			if diff := cmp.Diff(want, decisions(t, reg)); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			if got := logs.count(slog.LevelWarn); got != 1 {
				t.Errorf("%d warnings for one outage, want 1", got)
			}

			redis.Restart()
			for deadline := time.Now().Add(10 * time.Second); ; {
				resp := check(t, r.client, alice)
				if resp.Statuses[0].CurrentLimit != nil {
					break // counted again
				}
				if time.Now().After(deadline) {
					t.Fatal("Redis is back, the server still does not count")
				}
				time.Sleep(20 * time.Millisecond) // polling with a deadline
			}
			if got := logs.count(slog.LevelInfo); got != 1 {
				t.Errorf("%d info lines after the recovery, want 1", got)
			}
		})
	}
}

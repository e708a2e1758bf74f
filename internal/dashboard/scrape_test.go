package dashboard

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestQuantile(t *testing.T) {
	bounds := []float64{1, 5, 10, 50}
	tests := []struct {
		name   string
		q      float64
		cum    []float64
		total  float64
		want   float64
		wantOK bool
	}{
		{name: "no observations", q: 0.5, cum: []float64{0, 0, 0, 0}, total: 0},
		{name: "median in the first bucket, from zero", q: 0.5, cum: []float64{10, 10, 10, 10}, total: 10, want: 0.5, wantOK: true},
		{name: "median interpolated in the second bucket", q: 0.5, cum: []float64{0, 10, 10, 10}, total: 10, want: 3, wantOK: true},
		{name: "p90 across buckets", q: 0.9, cum: []float64{50, 80, 100, 100}, total: 100, want: 7.5, wantOK: true},
		{name: "p99 in the last finite bucket", q: 0.99, cum: []float64{0, 0, 0, 100}, total: 100, want: 49.6, wantOK: true},
		{name: "past the highest bound: that bound", q: 0.99, cum: []float64{0, 0, 0, 50}, total: 100, want: 50, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := quantile(tt.q, bounds, tt.cum, tt.total)
			if ok != tt.wantOK || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tt.q, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

const page = `# TYPE %[1]s_requests_total counter
%[1]s_requests_total{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="200"} 8
%[1]s_requests_total{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="503"} 2
%[1]s_requests_total{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="404"} 1
# TYPE %[1]s_request_duration_milliseconds histogram
%[1]s_request_duration_milliseconds_bucket{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="200",le="1"} 4
%[1]s_request_duration_milliseconds_bucket{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="200",le="10"} 8
%[1]s_request_duration_milliseconds_bucket{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="200",le="+Inf"} 8
%[1]s_request_duration_milliseconds_sum{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="200"} 30
%[1]s_request_duration_milliseconds_count{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="200"} 8
%[1]s_request_duration_milliseconds_bucket{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="503",le="1"} 0
%[1]s_request_duration_milliseconds_bucket{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="503",le="10"} 2
%[1]s_request_duration_milliseconds_bucket{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="503",le="+Inf"} 2
%[1]s_request_duration_milliseconds_sum{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="503"} 10
%[1]s_request_duration_milliseconds_count{reporter="source",source_workload="client",source_workload_namespace="default",destination_workload="reviews-v1",destination_workload_namespace="default",destination_service="reviews.default.svc.cluster.local",request_protocol="http",response_code="503"} 2
# TYPE go_goroutines gauge
go_goroutines 12
`

func TestParseMetrics(t *testing.T) {
	key := seriesKey{Reporter: "source", SrcWorkload: "client", SrcNamespace: "default", DstWorkload: "reviews-v1",
		DstNamespace: "default", DstService: "reviews.default.svc.cluster.local", Protocol: "http"}
	want := &snapshot{
		series: map[seriesKey]*counts{key: {requests: 11, failures: 2, observations: 10, buckets: []float64{4, 10}}},
		bounds: []float64{1, 10},
	}
	for _, prefix := range []string{"trellis", "istio"} {
		t.Run(prefix, func(t *testing.T) {
			got, err := parseMetrics(strings.NewReader(strings.ReplaceAll(page, "%[1]s", prefix)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(snapshot{}, counts{})); diff != "" {
				t.Errorf("parseMetrics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCountsSub(t *testing.T) {
	tests := []struct {
		name      string
		cur, prev *counts
		want      *counts
	}{
		{name: "increase", cur: &counts{requests: 10, failures: 2, observations: 10, buckets: []float64{3, 10}},
			prev: &counts{requests: 4, failures: 1, observations: 4, buckets: []float64{1, 4}},
			want: &counts{requests: 6, failures: 1, observations: 6, buckets: []float64{2, 6}}},
		{name: "restarted sidecar: counters from zero", cur: &counts{requests: 3, observations: 3, buckets: []float64{3, 3}},
			prev: &counts{requests: 40, observations: 40, buckets: []float64{20, 40}},
			want: &counts{requests: 3, observations: 3, buckets: []float64{3, 3}}},
		{name: "no histogram", cur: &counts{requests: 5}, prev: &counts{requests: 5}, want: &counts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cur.sub(tt.prev)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(counts{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("sub (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScrapeTarget(t *testing.T) {
	tests := []struct {
		name, metrics, inbound, want string
	}{
		{name: "loopback", metrics: "127.0.0.1:4000", want: "127.0.0.1:4000"},
		{name: "any address: the inbound host", metrics: "0.0.0.0:15020", inbound: "10.1.2.3:15006", want: "10.1.2.3:15020"},
		{name: "any address without inbound", metrics: "0.0.0.0:15020"},
		{name: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := bootstrapMetadata(tt.metrics, tt.inbound)
			if got := scrapeTarget(md); got != tt.want {
				t.Errorf("scrapeTarget = %q, want %q", got, tt.want)
			}
		})
	}
}

package dashboard

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/registry"
)

func bootstrapMetadata(metrics, inbound string) bootstrap.Metadata {
	md := bootstrap.Metadata{Metrics: metrics}
	if inbound != "" {
		md.Ports = []bootstrap.Port{{Port: 8080, Inbound: inbound}}
	}
	return md
}

func key(reporter, src, svc, dst string) seriesKey {
	return seriesKey{Reporter: reporter, SrcWorkload: src, SrcNamespace: "default", DstWorkload: dst, DstNamespace: "default",
		DstService: svc + ".default.svc.cluster.local", Protocol: "http"}
}

// snap is a snapshot with one bucket bound (10ms) where every request is fast.
func snap(series map[seriesKey][2]float64) *snapshot {
	s := &snapshot{series: map[seriesKey]*counts{}, bounds: []float64{10}}
	for k, v := range series {
		s.series[k] = &counts{requests: v[0], failures: v[1], observations: v[0], buckets: []float64{v[0]}}
	}
	return s
}

func TestHistoryRates(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newHistory(time.Minute, 100)
	client := key("source", "client", "reviews", "reviews-v1")
	server := key("destination", "client", "reviews", "reviews-v1")
	alive := map[string]bool{"client": true, "reviews-v1": true}
	// The first round is a baseline: the 100 requests before it are not a rate.
	h.add(t0, map[string]*snapshot{"client": snap(map[seriesKey][2]float64{client: {100, 0}})}, alive)
	h.add(t0.Add(5*time.Second), map[string]*snapshot{
		"client":     snap(map[seriesKey][2]float64{client: {150, 5}}),
		"reviews-v1": snap(map[seriesKey][2]float64{server: {50, 5}}), // new: all of it is new
	}, alive)
	// reviews-v1 restarted: its counters start again.
	h.add(t0.Add(10*time.Second), map[string]*snapshot{
		"client":     snap(map[seriesKey][2]float64{client: {200, 5}}),
		"reviews-v1": snap(map[seriesKey][2]float64{server: {20, 0}}),
	}, alive)

	series, span, bounds := h.window(t0.Add(-time.Second))
	if span != 10*time.Second {
		t.Errorf("span = %v, want 10s", span)
	}
	if got := series[server]; got == nil || got.requests != 70 {
		t.Errorf("destination-reported increase %+v, want 50 (new sidecar) + 20 (restarted)", got)
	}
	fl := flows(series)
	fk := flowKey{"client", "default", "reviews.default.svc.cluster.local", "reviews-v1", "default", "http"}
	got := statsOf(fl[fk], span, bounds)
	// Source-reported: 100 more requests, 5 failed, in 10s.
	if got.Requests != 100 || got.RPS != 10 || *got.SuccessRate != 0.95 || got.P50 == nil || *got.P50 != 5 {
		t.Errorf("flow stats = %+v", got)
	}

	t.Run("destination when the caller has no sidecar", func(t *testing.T) {
		only := map[seriesKey]*counts{server: {requests: 20}}
		if got := flows(only)[fk]; got == nil || got.requests != 20 {
			t.Errorf("flows = %+v", flows(only))
		}
	})

	t.Run("retention", func(t *testing.T) {
		h.add(t0.Add(2*time.Minute), map[string]*snapshot{}, map[string]bool{})
		if rounds, _ := h.since(time.Time{}); len(rounds) != 1 {
			t.Errorf("%d rounds kept, want 1", len(rounds))
		}
		if len(h.prev) != 0 {
			t.Errorf("snapshots of gone sidecars kept: %v", h.prev)
		}
	})
}

func TestMaxSeries(t *testing.T) {
	h := newHistory(time.Minute, 1)
	t0 := time.Now()
	a, b := key("source", "a", "s", "x"), key("source", "b", "s", "x")
	alive := map[string]bool{"n": true}
	h.add(t0, map[string]*snapshot{"n": snap(map[seriesKey][2]float64{})}, alive)
	h.add(t0.Add(time.Second), map[string]*snapshot{"n": snap(map[seriesKey][2]float64{a: {1, 0}, b: {1, 0}})}, alive)
	if got := h.Overflow(); got != 1 {
		t.Errorf("Overflow = %d, want 1", got)
	}
}

func TestGraph(t *testing.T) {
	fl := map[flowKey]*counts{
		{"client", "default", "reviews.default.svc.cluster.local", "reviews-v1", "default", "http"}: {requests: 10, observations: 10, buckets: []float64{10}},
		{"client", "default", "reviews.default.svc.cluster.local", "reviews-v2", "default", "http"}: {requests: 10, failures: 10, observations: 10, buckets: []float64{10}},
		{"client", "default", "unknown", "unknown", "unknown", "http"}:                              {requests: 1},
	}
	instances := []registry.Instance{
		{NodeID: "client.default", Metadata: bootstrap.Metadata{Workload: "client", Namespace: "default"}},
		{NodeID: "reviews-v1.default", Metadata: bootstrap.Metadata{Workload: "reviews-v1", Namespace: "default", Service: "reviews",
			Labels: map[string]string{"app": "reviews", "version": "v1"}}},
		{NodeID: "reviews-v3.default", Metadata: bootstrap.Metadata{Workload: "reviews-v3", Namespace: "default", Service: "reviews"}},
	}
	nodes, edges := graph(fl, 10*time.Second, []float64{10}, instances)
	type nodeSum struct {
		ID       string
		Sidecar  bool
		Requests float64
	}
	var gotNodes []nodeSum
	for _, n := range nodes {
		gotNodes = append(gotNodes, nodeSum{n.ID, n.Sidecar, n.Requests})
	}
	wantNodes := []nodeSum{
		{"service/reviews.default.svc.cluster.local", false, 20},
		{"service/unknown", false, 1},
		{"workload/default/client", true, 0},
		{"workload/default/reviews-v1", true, 10},
		{"workload/default/reviews-v2", false, 10},
		{"workload/default/reviews-v3", true, 0},
	}
	if diff := cmp.Diff(wantNodes, gotNodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	type edgeSum struct {
		From, To string
		Declared bool
		RPS      float64
		Success  float64
	}
	var gotEdges []edgeSum
	for _, e := range edges {
		s := -1.0
		if e.SuccessRate != nil {
			s = *e.SuccessRate
		}
		gotEdges = append(gotEdges, edgeSum{e.Source, e.Target, e.Declared, e.RPS, s})
	}
	wantEdges := []edgeSum{
		{"service/reviews.default.svc.cluster.local", "workload/default/reviews-v1", false, 1, 1},
		{"service/reviews.default.svc.cluster.local", "workload/default/reviews-v2", false, 1, 0},
		{"service/reviews.default.svc.cluster.local", "workload/default/reviews-v3", true, 0, -1},
		{"workload/default/client", "service/reviews.default.svc.cluster.local", false, 2, 0.5},
		{"workload/default/client", "service/unknown", false, 0.1, 1},
	}
	if diff := cmp.Diff(wantEdges, gotEdges); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	for _, n := range nodes {
		if n.ID == "workload/default/reviews-v1" && (n.App != "reviews" || n.Version != "v1") {
			t.Errorf("reviews-v1 labels: %+v", n)
		}
	}
}

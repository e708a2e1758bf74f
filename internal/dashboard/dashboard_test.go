package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/registry"
)

// fakeSidecar serves /stats/prometheus (real client_golang metrics) and /tap
// (JSON lines it is told to send), as a sidecar's metrics and admin servers do.
type fakeSidecar struct {
	node     string
	md       bootstrap.Metadata
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	metrics  *httptest.Server
	admin    *httptest.Server
	lines    chan string
}

var requestLabels = []string{"reporter", "source_workload", "source_workload_namespace", "destination_workload",
	"destination_workload_namespace", "destination_service", "request_protocol", "response_code"}

func newFakeSidecar(t *testing.T, workload, service string) *fakeSidecar {
	reg := prometheus.NewRegistry()
	f := &fakeSidecar{
		node:     workload + ".default",
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_requests_total"}, requestLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "trellis_request_duration_milliseconds",
			Buckets: []float64{1, 5, 10, 50}}, requestLabels),
		lines: make(chan string, 16),
	}
	reg.MustRegister(f.requests, f.duration)
	f.metrics = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(f.metrics.Close)
	f.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tap" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case l := <-f.lines:
				io.WriteString(w, l+"\n")
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(func() { f.admin.CloseClientConnections(); f.admin.Close() })
	f.md = bootstrap.Metadata{Workload: workload, Namespace: "default", Service: service,
		Metrics: f.metrics.Listener.Addr().String(), Admin: f.admin.Listener.Addr().String()}
	return f
}

// observe counts n requests from src to svc's workload dst, as reporter.
func (f *fakeSidecar) observe(reporter, src, svc, dst, code string, ms float64, n int) {
	l := []string{reporter, src, "default", dst, "default", svc + ".default.svc.cluster.local", "http", code}
	for range n {
		f.requests.WithLabelValues(l...).Inc()
		f.duration.WithLabelValues(l...).Observe(ms)
	}
}

type sidecarList []*fakeSidecar

func (s sidecarList) Instances() []registry.Instance {
	var out []registry.Instance
	for _, f := range s {
		out = append(out, registry.Instance{NodeID: f.node, Metadata: f.md})
	}
	return out
}

// poll calls f until it returns nil or ctx ends.
func poll(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestDashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, reviews := newFakeSidecar(t, "client", ""), newFakeSidecar(t, "reviews-v1", "reviews")
	d, err := New(Config{Sidecars: sidecarList{client, reviews}, ScrapeInterval: 50 * time.Millisecond, Tap: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Serve(serveCtx, ln) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := NewClient(ln.Addr().String())

	// Traffic keeps flowing until the graph shows it.
	var mu sync.Mutex
	poll(ctx, t, "the graph's edges", func() error {
		mu.Lock()
		client.observe("source", "client", "reviews", "reviews-v1", "200", 3, 9)
		client.observe("source", "client", "reviews", "reviews-v1", "503", 30, 1)
		reviews.observe("destination", "client", "reviews", "reviews-v1", "200", 2, 9)
		reviews.observe("destination", "client", "reviews", "reviews-v1", "503", 20, 1)
		mu.Unlock()
		g, err := c.Graph(ctx, "1m")
		if err != nil {
			return err
		}
		var got []string
		for _, e := range g.Edges {
			if e.Requests > 0 {
				got = append(got, fmt.Sprintf("%s>%s %.2f", e.Source, e.Target, *e.SuccessRate))
			}
		}
		want := "service/reviews.default.svc.cluster.local>workload/default/reviews-v1 0.90," +
			"workload/default/client>service/reviews.default.svc.cluster.local 0.90"
		if strings.Join(got, ",") != want {
			return fmt.Errorf("edges with traffic %v, want %s", got, want)
		}
		return nil
	})

	t.Run("services", func(t *testing.T) {
		resp, err := c.Services(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Services) != 1 || resp.Services[0].Name != "reviews" || resp.Services[0].P50 == nil ||
			*resp.Services[0].P50 > 5 || *resp.Services[0].P99 < 10 {
			t.Errorf("services: %+v", resp.Services)
		}
	})

	t.Run("workloads", func(t *testing.T) {
		resp, err := c.Workloads(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range resp.Workloads {
			got = append(got, fmt.Sprintf("%s in=%t out=%t", w.Name, w.Inbound.Requests > 0, w.Outbound.Requests > 0))
		}
		if strings.Join(got, ";") != "client in=false out=true;reviews-v1 in=true out=false" {
			t.Errorf("workloads: %v", got)
		}
	})

	t.Run("tap", func(t *testing.T) {
		tapCtx, stopTap := context.WithCancel(ctx)
		defer stopTap()
		events := make(chan TapEvent, 16)
		tapDone := make(chan error, 1)
		go func() {
			tapDone <- c.Tap(tapCtx, TapQuery{Service: "reviews"}, func(ev TapEvent) error {
				events <- ev
				return nil
			})
		}()
		poll(ctx, t, "both sidecars tapped", func() error {
			for _, f := range []*fakeSidecar{client, reviews} {
				if !d.taps.isOpen(f.node) {
					return fmt.Errorf("%s not tapped", f.node)
				}
			}
			return nil
		})
		line := func(reporter, path, cluster string) string {
			b, _ := json.Marshal(TapLine{Method: "GET", Path: path, Authority: "reviews:8080", ResponseCode: 200,
				Reporter: reporter, UpstreamCluster: cluster, Source: TapParty{Workload: "client"}})
			return string(b)
		}
		client.lines <- line("source", "/other", "outbound|8080||ratings.default.svc.cluster.local")
		client.lines <- line("source", "/mine", "outbound|8080||reviews.default.svc.cluster.local")
		reviews.lines <- line("destination", "/mine", "inbound|8080||")
		got := map[string]bool{}
		for len(got) < 2 {
			select {
			case ev := <-events:
				if ev.Path != "/mine" || ev.Service != "reviews.default.svc.cluster.local" {
					t.Errorf("event not filtered out: %+v", ev)
				}
				got[ev.Node+" "+ev.Reporter] = true
			case <-ctx.Done():
				t.Fatalf("tap events: %v", got)
			}
		}
		if !got["client.default source"] || !got["reviews-v1.default destination"] {
			t.Errorf("tap events: %v", got)
		}
		stopTap()
		if err := <-tapDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Tap: %v", err)
		}
	})

	t.Run("web UI", func(t *testing.T) {
		for _, path := range []string{"/", "/app.js", "/graph.js", "/style.css"} {
			resp, err := http.Get("http://" + ln.Addr().String() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s", path, resp.Status)
			}
		}
	})
}

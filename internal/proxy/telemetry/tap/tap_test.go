package tap

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/telemetry/accesslog"
)

func request(path string, code int) *reqinfo.Info {
	return &reqinfo.Info{
		Start: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Duration: 2 * time.Millisecond, Code: code,
		Cluster: "outbound|8080||reviews.default.svc.cluster.local", Host: "127.0.0.1:1234",
		Telemetry: reqinfo.Telemetry{Method: "GET", Authority: "reviews:8080", Path: path, Proto: "HTTP/1.1",
			GRPCStatus: -1, Peer: &reqinfo.Peer{Workload: "reviews-v1", Namespace: "default"}},
	}
}

// stream connects a client and returns a func reading its next line.
func stream(ctx context.Context, t *testing.T, url, accept string) func() accesslog.Line {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	return func() accesslog.Line {
		t.Helper()
		for sc.Scan() {
			text := strings.TrimPrefix(sc.Text(), "data: ")
			if text == "" || strings.HasPrefix(text, ":") {
				continue
			}
			var l accesslog.Line
			if err := json.Unmarshal([]byte(text), &l); err != nil {
				t.Fatalf("line %q: %v", text, err)
			}
			return l
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return accesslog.Line{}
	}
}

// waitClients waits until n clients are subscribed.
func waitClients(ctx context.Context, t *testing.T, tp *Tap, n int32) {
	t.Helper()
	for tp.clients.Load() != n {
		select {
		case <-ctx.Done():
			t.Fatalf("clients = %d, want %d", tp.clients.Load(), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestTap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := New(Config{Self: reqinfo.Peer{Workload: "client", Namespace: "default"}, Backlog: 2})
	srv := httptest.NewServer(tp)
	defer srv.Close()

	tp.RecordHTTP(request("/before", 200))
	if tp.Active() {
		t.Fatal("active without clients")
	}
	for _, tt := range []struct {
		name, accept string
	}{
		{name: "json lines"},
		{name: "server-sent events", accept: "text/event-stream"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			next := stream(ctx, t, srv.URL, tt.accept)
			waitClients(ctx, t, tp, 1)
			tp.RecordHTTP(request("/a-"+tt.name, 200))
			tp.RecordHTTP(request("/b-"+tt.name, 503))
			var got []string
			for len(got) < 2 {
				l := next()
				if !strings.HasSuffix(l.Path, tt.name) {
					continue // the backlog of the previous case
				}
				got = append(got, l.Path)
				if l.Source.Workload != "client" || l.Destination.Workload != "reviews-v1" || l.Reporter != "source" {
					t.Errorf("line %+v", l)
				}
			}
			if diff := cmp.Diff([]string{"/a-" + tt.name, "/b-" + tt.name}, got); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			cancel()
			waitClients(context.Background(), t, tp, 0)
		})
	}

	t.Run("backlog of the last requests", func(t *testing.T) {
		next := stream(ctx, t, srv.URL, "")
		var got []string
		for range 2 {
			got = append(got, next().Path)
		}
		if diff := cmp.Diff([]string{"/a-server-sent events", "/b-server-sent events"}, got); diff != "" {
			t.Errorf("backlog (-want +got):\n%s", diff)
		}
	})
}

func TestSlowClientDrops(t *testing.T) {
	tp := New(Config{Buffer: 1})
	c, _ := tp.subscribe()
	defer tp.unsubscribe(c)
	for range 3 {
		tp.RecordHTTP(request("/x", 200))
	}
	if got := tp.Dropped(); got != 2 {
		t.Errorf("Dropped = %d, want 2", got)
	}
}

func BenchmarkRecordInactive(b *testing.B) {
	tp := New(Config{})
	info := request("/x", 200)
	b.ReportAllocs()
	for b.Loop() {
		tp.RecordHTTP(info)
	}
}

func BenchmarkRecordActive(b *testing.B) {
	tp := New(Config{})
	c, _ := tp.subscribe()
	defer tp.unsubscribe(c)
	info := request("/x", 200)
	b.ReportAllocs()
	for b.Loop() {
		tp.RecordHTTP(info)
		select {
		case <-c.ch:
		default:
		}
	}
}

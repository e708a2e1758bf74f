package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"trellis.dev/trellis/internal/dashboard"
)

// fakeDashboard answers the dashboard API with canned JSON.
func fakeDashboard(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	canned := func(path, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
		})
	}
	canned("/api/services", `{"window":"1m0s","services":[
		{"fqdn":"ratings.default.svc.cluster.local","name":"ratings","namespace":"default","requests":60,"rps":1,"successRate":0.9,"p50Ms":2.5,"p90Ms":4.75,"p99Ms":48,"workloads":["default/ratings-v1"]},
		{"fqdn":"reviews.default.svc.cluster.local","name":"reviews","namespace":"default","requests":600,"rps":10,"successRate":1,"p50Ms":1.25,"p90Ms":9.5,"p99Ms":12000,"workloads":["default/reviews-v1","default/reviews-v2"]},
		{"fqdn":"idle.default.svc.cluster.local","name":"idle","namespace":"default","requests":0,"rps":0,"successRate":null,"p50Ms":null,"p90Ms":null,"p99Ms":null,"workloads":["default/idle"]}]}`)
	canned("/api/workloads", `{"window":"1m0s","workloads":[
		{"name":"client","namespace":"default","sidecar":true,"inbound":{"requests":0,"rps":0,"successRate":null,"p50Ms":null,"p90Ms":null,"p99Ms":null},
		 "outbound":{"requests":660,"rps":11,"successRate":0.99,"p50Ms":1,"p90Ms":5,"p99Ms":40}},
		{"name":"reviews-v1","namespace":"default","sidecar":true,"inbound":{"requests":300,"rps":5,"successRate":1,"p50Ms":1,"p90Ms":9,"p99Ms":11},
		 "outbound":{"requests":0,"rps":0,"successRate":null,"p50Ms":null,"p90Ms":null,"p99Ms":null}}]}`)
	canned("/api/tap", `{"node":"client.default","service":"reviews.default.svc.cluster.local","time":"2025-01-02T03:04:05.678Z","method":"GET","authority":"reviews:8080","path":"/reviews/1","protocol":"HTTP/1.1","response_code":200,"response_flags":"-","duration_ms":2.25,"source":{"workload":"client"},"destination":{"workload":"reviews-v1"},"reporter":"source"}
{"node":"reviews-v1.default","service":"reviews.default.svc.cluster.local","time":"2025-01-02T03:04:05.679Z","method":"GET","authority":"reviews:8080","path":"/reviews/1","protocol":"HTTP/1.1","response_code":503,"response_flags":"UF","duration_ms":0.5,"source":{"workload":"client"},"destination":{"workload":"reviews-v1"},"reporter":"destination"}
`)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// golden compares got with testdata/<name>.golden (-update rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func runDashboardCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestStatAndTap(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	srv := fakeDashboard(t)
	state := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(state, []byte(`{"controlPlane":{"dashboard":"`+srv.Listener.Addr().String()+`"},"workloads":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cmd     func() *cobra.Command
		args    []string
		wantErr bool
	}{
		{name: "stat", cmd: newStatCmd, args: []string{"--dashboard", srv.URL}},
		{name: "stat-svc-reviews", cmd: newStatCmd, args: []string{"--state", state, "svc", "reviews"}},
		{name: "stat-deploy", cmd: newStatCmd, args: []string{"--dashboard", srv.URL, "deploy"}},
		{name: "stat-unknown-service", cmd: newStatCmd, args: []string{"--dashboard", srv.URL, "svc", "nope"}, wantErr: true},
		{name: "stat-unknown-kind", cmd: newStatCmd, args: []string{"--dashboard", srv.URL, "pods"}, wantErr: true},
		{name: "tap", cmd: newTapCmd, args: []string{"--dashboard", srv.URL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runDashboardCmd(t, tt.cmd(), tt.args...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v; output:\n%s", err, tt.wantErr, out)
			}
			if !tt.wantErr {
				golden(t, tt.name, out)
			}
		})
	}
}

func TestDrawTop(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	p := func(v float64) *float64 { return &v }
	g := &dashboard.Graph{Window: "1m0s", GeneratedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Nodes: []dashboard.Node{
			{ID: "workload/default/client", Kind: dashboard.KindWorkload, Name: "client", Namespace: "default"},
			{ID: "service/reviews.default.svc.cluster.local", Kind: dashboard.KindService, Name: "reviews", Namespace: "default"},
			{ID: "service/ratings.default.svc.cluster.local", Kind: dashboard.KindService, Name: "ratings", Namespace: "default"},
			{ID: "workload/default/reviews-v1", Kind: dashboard.KindWorkload, Name: "reviews-v1", Namespace: "default"},
		},
		Edges: []dashboard.Edge{
			{Source: "workload/default/client", Target: "service/ratings.default.svc.cluster.local",
				Stats: dashboard.Stats{Requests: 60, RPS: 1, SuccessRate: p(0.9), P50: p(2), P90: p(4), P99: p(9)}},
			{Source: "workload/default/client", Target: "service/reviews.default.svc.cluster.local",
				Stats: dashboard.Stats{Requests: 600, RPS: 10, SuccessRate: p(1), P50: p(1), P90: p(3), P99: p(20)}},
			{Source: "service/reviews.default.svc.cluster.local", Target: "workload/default/reviews-v1",
				Stats: dashboard.Stats{Requests: 600, RPS: 10}},
		}}
	paths := &pathTable{byKey: map[pathKey]*pathStats{}}
	for i, code := range []int{200, 200, 500} {
		ev := dashboard.TapEvent{Service: "reviews.default.svc.cluster.local", TapLine: dashboard.TapLine{
			Method: "GET", Path: "/reviews", ResponseCode: code, DurationMS: float64(i + 1), Reporter: "source",
			Source: dashboard.TapParty{Workload: "client"}}}
		paths.add(&ev)
		ev.Reporter = "destination" // the same request from the callee's sidecar: not counted twice
		paths.add(&ev)
	}
	var b bytes.Buffer
	drawTop(&b, g, paths, "", 10)
	golden(t, "top", b.String())
}

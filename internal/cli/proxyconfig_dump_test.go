package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/local"
)

// recordedDumpServer serves testdata/config_dump.json as a sidecar's GET
// /config_dump. The file was recorded from a real sidecar: the "web" workload of
// `trellis up -f testdata/config_dump-mesh.yaml` (a weighted VirtualService, mutual
// TLS, an upstream bind). The sidecar test helpers (internal/proxy/internal/xdstest)
// cannot be imported from here, and running a whole mesh per table would make these
// tests slow; the recording keeps the tables honest about the real dump's shape.
func recordedDumpServer(t *testing.T) string {
	t.Helper()
	body, err := os.ReadFile("testdata/config_dump.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/config_dump" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestProxyConfigDump(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := recordedDumpServer(t)
	for _, section := range []string{"listeners", "routes", "clusters", "endpoints"} {
		t.Run(section, func(t *testing.T) {
			got, err := runCmd(ctx, section, "--admin", addr)
			if err != nil {
				t.Fatal(err)
			}
			golden := "testdata/proxy-config-" + section + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProxyConfigTargets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := recordedDumpServer(t)
	state := filepath.Join(t.TempDir(), "state.json")
	data, err := json.Marshal(local.State{Workloads: []local.WorkloadState{
		{Name: "web", Namespace: "default", Admin: addr},
		{Name: "db", Namespace: "default", Admin: "127.0.0.1:1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		want    string // substring of the output
		wantErr string // substring of the error
	}{
		{name: "workload of the state file", args: []string{"routes", "web", "--state", state}, want: "reviews +7 more"},
		{name: "namespace/name", args: []string{"clusters", "default/web", "--state", state}, want: "inbound|8080||"},
		{name: "json", args: []string{"endpoints", "--admin", addr, "-o", "json"}, want: `"clusterName": "outbound|5432||db.default.svc.cluster.local"`},
		{name: "unknown workload", args: []string{"routes", "nope", "--state", state}, wantErr: `"nope" is not a workload of`},
		{name: "pod needs a port-forward", args: []string{"listeners", "reviews-v1-7d9f"}, wantErr: "kubectl port-forward reviews-v1-7d9f 15000` and pass --admin 127.0.0.1:15000"},
		{name: "secret keeps the same rule", args: []string{"secret", "reviews-v1-7d9f"}, wantErr: "kubectl port-forward"},
		{name: "no target", args: []string{"clusters"}, wantErr: "name a TARGET"},
		{name: "both", args: []string{"clusters", "web", "--admin", addr}, wantErr: "not both"},
		{name: "admin not answering", args: []string{"clusters", "db", "--state", state}, wantErr: "reading http://127.0.0.1:1/config_dump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runCmd(ctx, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, got)
			}
		})
	}
}

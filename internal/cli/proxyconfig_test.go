package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/certinfo"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// adminServer serves body as a sidecar's GET /certs.
func adminServer(t *testing.T, status int, body []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != certinfo.Path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func runCmd(ctx context.Context, args ...string) (string, error) {
	cmd := newProxyConfigCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestProxyConfigSecret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := os.ReadFile("testdata/certs.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		status int
		body   []byte
		golden string // compared with the output; empty: wantErr
		want   string // substring of the error
	}{
		{name: "table", status: http.StatusOK, body: body, golden: "testdata/proxy-config-secret.golden"},
		{name: "no certificate yet", status: http.StatusOK, body: []byte(`{"certificates":[]}`), golden: "testdata/proxy-config-secret-empty.golden"},
		{name: "admin error", status: http.StatusServiceUnavailable, body: []byte("not ready\n"), want: "503 Service Unavailable: not ready"},
		{name: "not JSON", status: http.StatusOK, body: []byte("<html>"), want: "decoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := adminServer(t, tt.status, tt.body)
			got, err := runCmd(ctx, "secret", "--admin", addr)
			if tt.golden == "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error = %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *updateGolden {
				if err := os.WriteFile(tt.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProxyConfigSecretRealCertificates: certificates from the CA, described as a
// sidecar does, print with their SPIFFE ID and fingerprints.
func TestProxyConfigSecretRealCertificates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	authority, err := ca.New(ca.Config{DataDir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := authority.IssueServing([]string{"localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := authority.TrustBundle()
	certs := certinfo.Certs{
		Identity:     "spiffe://cluster.local/ns/default/sa/x",
		Certificates: []certinfo.Certificate{{Name: "default", Chain: []certinfo.Cert{certinfo.Describe(serving.Leaf)}}},
		TrustBundle:  &certinfo.TrustBundle{Name: "ROOTCA", Roots: certinfo.DescribeAll(roots)},
	}
	body, err := json.Marshal(certs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runCmd(ctx, "secret", "--admin", adminServer(t, http.StatusOK, body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"localhost", ca.Fingerprint(roots[0])[:16], serving.Leaf.SerialNumber.Text(16),
		serving.Leaf.NotAfter.UTC().Format(time.RFC3339)} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

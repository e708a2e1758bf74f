package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// echoService is a Workload of service echo, for the rules of the analyze tests.
const echoService = `apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}}
spec:
  service: echo
  ports: [{name: http, port: 8080}]
`

// schemeMatch routes on the scheme, which Trellis does not implement (line 17).
const schemeMatch = echoService + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
      scheme: {exact: https}
    route:
    - destination: {host: echo}
`

// `trellis analyze -f` names each unsupported field (a warning: exit 0) and each
// rule that cannot be applied (an error: exit 1) with file and line.
func TestAnalyze(t *testing.T) {
	tests := []struct {
		name     string
		mesh     string
		want     []string // stdout, line by line
		wantExit int
	}{
		{
			name: "unsupported field",
			mesh: schemeMatch,
			want: []string{
				"mesh.yaml:17: warning: VirtualService default/echo: spec.http[0].match[0].scheme: not supported: the sidecar does not match on the scheme; ignored",
				"0 errors, 1 warning",
			},
		},
		{
			name: "undefined subset",
			mesh: echoService + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - route:
    - destination: {host: echo, subset: v9}
`,
			want: []string{
				"mesh.yaml:14: error: VirtualService default/echo: spec.http[0].route: no destination can be reached; the route answers 503",
				`mesh.yaml:15: error: VirtualService default/echo: spec.http[0].route[0].destination.subset: no DestinationRule defines subset "v9" of echo.default.svc.cluster.local; the destination is skipped`,
				"2 errors, 0 warnings",
			},
			wantExit: 1,
		},
		{
			name: "nothing to report",
			mesh: echoService,
			want: []string{"0 errors, 0 warnings"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(tt.mesh), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, trellisBin, "analyze", "-f", "mesh.yaml")
			cmd.Dir = dir
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			exit := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("trellis analyze: %v", err)
			}
			if diff := cmp.Diff(tt.want, strings.Split(strings.TrimSpace(string(out)), "\n")); diff != "" {
				t.Errorf("stdout (-want +got):\n%s\nstderr:\n%s", diff, stderr.String())
			}
			if exit != tt.wantExit {
				t.Errorf("exit status %d, want %d; stderr:\n%s", exit, tt.wantExit, stderr.String())
			}
		})
	}
}

// The control plane of a running mesh logs the unsupported field too.
func TestUnsupportedFieldLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up, _ := startUp(t, schemeMatch)
	up.waitState(ctx, t, 1)
	eventually(ctx, t, "the unsupported field in the control plane's log", func() error {
		for _, line := range strings.Split(up.stderr.String(), "\n") {
			if strings.HasPrefix(line, "[control]") && strings.Contains(line, "spec.http[0].match[0].scheme") {
				return nil
			}
		}
		return errors.New("not logged yet")
	})
}

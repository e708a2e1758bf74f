package cli

import (
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
)

func TestKubernetesBootstrap(t *testing.T) {
	podEnv := map[string]string{"POD_NAME": "echo-7f9c", "POD_NAMESPACE": "shop", "SERVICE_ACCOUNT": "echo", "POD_IP": "10.244.0.7"}
	flags := kubeProxyFlags{enabled: true, xds: "trellis.trellis-system.svc:15012", xdsCA: "/etc/trellis/ca.pem",
		tokenFile: "/var/run/secrets/trellis/tokens/token", dataDir: "/var/lib/trellis"}
	// injected is the bootstrap of podEnv and flags.
	injected := func() *bootstrap.Bootstrap {
		return &bootstrap.Bootstrap{
			Node: bootstrap.Node{ID: "echo-7f9c.shop", Cluster: "echo-7f9c", Metadata: bootstrap.Metadata{
				Workload: "echo-7f9c", Namespace: "shop", ServiceAccount: "echo", Mode: bootstrap.ModeTransparent,
				PodIP: "10.244.0.7"}},
			XDS: "trellis.trellis-system.svc:15012", XDSCAFile: "/etc/trellis/ca.pem",
			TokenFile: "/var/run/secrets/trellis/tokens/token", Admin: "127.0.0.1:15000", Metrics: "0.0.0.0:15020",
			DNS: "127.0.0.1:15053",
		}
	}
	tests := []struct {
		name    string
		env     map[string]string
		flags   kubeProxyFlags
		want    *bootstrap.Bootstrap
		wantErr string
	}{
		{
			name: "injected", env: podEnv, flags: flags, want: injected(),
		},
		{name: "no env", env: map[string]string{"POD_NAME": "x"}, flags: flags, wantErr: "environment POD_NAMESPACE, SERVICE_ACCOUNT, POD_IP not set"},
		{name: "bad pod IP", env: map[string]string{"POD_NAME": "x", "POD_NAMESPACE": "y", "SERVICE_ACCOUNT": "z", "POD_IP": "fd00::1"},
			flags: flags, wantErr: `POD_IP "fd00::1" is not an IPv4 address`},
		{
			name: "app probes", flags: flags,
			env: func() map[string]string {
				env := maps.Clone(podEnv)
				env[bootstrap.AppProbesEnv] = `{"/app-health/app/readyz":{"port":8080,"path":"/ready"}}`
				return env
			}(),
			want: func() *bootstrap.Bootstrap {
				b := injected()
				b.AppProbes = map[string]bootstrap.AppProbe{"/app-health/app/readyz": {Port: 8080, Path: "/ready"}}
				return b
			}(),
		},
		{name: "bad app probes", flags: flags,
			env:     map[string]string{"POD_NAME": "x", "POD_NAMESPACE": "y", "SERVICE_ACCOUNT": "z", "POD_IP": "10.0.0.1", bootstrap.AppProbesEnv: "{"},
			wantErr: "environment TRELLIS_APP_PROBES: unexpected end of JSON input"},
		{
			name: "labels", flags: flags,
			env: func() map[string]string {
				env := maps.Clone(podEnv)
				env[bootstrap.LabelsEnv] = `{"app":"echo","version":"v2"}`
				return env
			}(),
			want: func() *bootstrap.Bootstrap {
				b := injected()
				b.Node.Metadata.Labels = map[string]string{"app": "echo", "version": "v2"}
				return b
			}(),
		},
		{name: "bad labels", flags: flags,
			env:     map[string]string{"POD_NAME": "x", "POD_NAMESPACE": "y", "SERVICE_ACCOUNT": "z", "POD_IP": "10.0.0.1", bootstrap.LabelsEnv: `{"app":1}`},
			wantErr: "environment TRELLIS_LABELS: json: cannot unmarshal"},
		{name: "no xds", env: podEnv, flags: kubeProxyFlags{tokenFile: "t"}, wantErr: "--xds-address is required"},
		{name: "no token", env: podEnv, flags: kubeProxyFlags{xds: "x:1"}, wantErr: "--token-file is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kubernetesBootstrap(tt.flags, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("bootstrap (-want +got):\n%s", diff)
			}
		})
	}
}

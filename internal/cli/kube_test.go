package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/kube/kubetest"
)

// run runs the trellis command line with args and returns its standard output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if errOut.Len() > 0 {
		t.Logf("stderr of trellis %s:\n%s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), err
}

func TestInstallDryRun(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		want, wantNot []string
		wantErr       string
	}{
		{
			name: "in-cluster control plane",
			args: []string{"install", "--dry-run", "--namespace", "mesh", "--image", "example.com/trellis:1"},
			want: []string{"kind: Deployment", "kind: PodDisruptionBudget", "namespace: mesh", "image: example.com/trellis:1",
				"name: virtualservices.networking.istio.io", "name: trellis-sidecar-injector", "name: trellis-validator"},
		},
		{
			name:    "control plane outside",
			args:    []string{"install", "--dry-run", "--control-plane-url", "https://127.0.0.1:15017"},
			want:    []string{"url: https://127.0.0.1:15017/inject", "url: https://127.0.0.1:15017/validate"},
			wantNot: []string{"kind: Deployment", "kind: PodDisruptionBudget"},
		},
		{
			name: "rate-limit service",
			args: []string{"install", "--dry-run", "--namespace", "mesh", "--ratelimit", "--redis-addr", "redis.data:6379"},
			want: []string{"name: trellis-ratelimit", "- redis.data:6379", "--ratelimit-addr=trellis-ratelimit.mesh.svc:8081"},
		},
		{
			name:    "no rate-limit service by default",
			args:    []string{"install", "--dry-run"},
			wantNot: []string{"trellis-ratelimit", "--ratelimit-addr"},
		},
		{
			name:    "rate-limit service without Redis",
			args:    []string{"install", "--dry-run", "--ratelimit"},
			wantErr: "needs a Redis address (--redis-addr",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("trellis %v: error %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("trellis %v: %v", tt.args, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output has %q", w)
				}
			}
		})
	}
}

func TestInjectCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(in, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n  containers: [{name: app, image: example.com/app:1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "inject", "-f", in, "--image", "example.com/trellis:1")
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
	for _, w := range []string{"name: trellis-init", "name: trellis-proxy", "restartPolicy: Always", "image: example.com/trellis:1"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if _, err := run(t, "inject", "-f", filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("inject of a missing file: error %v, want one naming the file", err)
	}
}

// TestInstallUninstall runs the commands against a real API server.
func TestInstallUninstall(t *testing.T) {
	cluster := kubetest.Start(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "install", "--kubeconfig", cluster.Kubeconfig, "--control-plane-url", "https://127.0.0.1:15017", "--ca-bundle", ca)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for _, w := range []string{
		"CustomResourceDefinition virtualservices.networking.istio.io applied",
		"MutatingWebhookConfiguration trellis-sidecar-injector applied",
		"Service trellis-system/trellis applied",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("install output lacks %q:\n%s", w, out)
		}
	}
	out, err = run(t, "uninstall", "--kubeconfig", cluster.Kubeconfig)
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	for _, w := range []string{
		"ValidatingWebhookConfiguration trellis-validator deleted",
		"Deployment trellis-system/trellis absent",
		"Namespace trellis-system deleted",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("uninstall output lacks %q:\n%s", w, out)
		}
	}
}

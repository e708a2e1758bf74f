package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/kube/kubetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestControlKubeconfig runs `trellis control --kubeconfig` against a real API server:
// it becomes ready with no mesh file, leads, and creates the CA Secret.
func TestControlKubeconfig(t *testing.T) {
	cluster := kubetest.Start(t)
	cluster.CreateNamespace(t, "mesh-system", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mon := freeAddr(t)
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"control", "--kubeconfig", cluster.Kubeconfig, "--namespace", "mesh-system",
		"--xds-addr", freeAddr(t), "--secure-xds-addr", freeAddr(t), "--webhook-addr", freeAddr(t),
		"--monitoring-addr", mon, "--dashboard-addr", "", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--log-level", "warn"})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("trellis control: %v\n%s", err, out.String())
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+mon+"/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trellis control did not become ready: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := cluster.Client.CoreV1().Secrets("mesh-system").Get(ctx, "trellis-ca", metav1.GetOptions{}); err != nil {
		t.Errorf("the CA Secret: %v", err)
	}
	lease, err := cluster.Client.CoordinationV1().Leases("mesh-system").Get(ctx, "trellis", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("the Lease: %v, %+v", err, lease)
	}
}

func TestControlNeedsFilesOrKubernetes(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := run(t, "control"); err == nil {
		t.Error("trellis control with neither -f nor --kubeconfig succeeded")
	}
}

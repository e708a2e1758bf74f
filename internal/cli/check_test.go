package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
)

// closedURL is an https URL on a loopback port nothing listens on: the webhooks of
// the install point there, so the API server's calls fail fast (and the validating
// webhook, without a caBundle, fails open).
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

// checkOutput runs trellis with args and checks its output has every want (spaces
// collapsed); wantErr says whether it must fail.
func checkOutput(t *testing.T, wantErr bool, want []string, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if (err != nil) != wantErr {
		t.Fatalf("trellis %s: error %v, want error: %v\n%s", strings.Join(args, " "), err, wantErr, out)
	}
	// Columns are padded to the widest cell: compare with single spaces.
	flat := strings.Join(strings.Fields(out), " ")
	for _, w := range want {
		if !strings.Contains(flat, strings.Join(strings.Fields(w), " ")) {
			t.Errorf("trellis %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

// TestCheckAndAnalyzeCluster runs check before and after an install, and analyze on
// the cluster's objects, against a real API server.
func TestCheckAndAnalyzeCluster(t *testing.T) {
	cluster := kubetest.Start(t)
	kc := cluster.Kubeconfig
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("before install", func(t *testing.T) {
		checkOutput(t, false, []string{"Checking prerequisites (before install)", "ok    API server reachable", "ok    Kubernetes version >= 1.29",
			"ok    may create customresourcedefinitions.apiextensions.k8s.io", "ok    may create deployments.apps in trellis-system",
			"ok    admission webhooks answer"}, "check", "--kubeconfig", kc)
	})
	t.Run("before install, as a user without rights", func(t *testing.T) {
		out := checkOutput(t, true, []string{"fail  may create mutatingwebhookconfigurations.admissionregistration.k8s.io", "ok    API server reachable"},
			"check", "--kubeconfig", kc, "--as", "jane")
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "ok") && strings.Contains(line, "may create") {
				t.Errorf("jane may create something: %s", line)
			}
		}
	})

	url := closedURL(t)
	client, err := install.NewClient(cluster.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	apply := func(t *testing.T, cfg install.Config) {
		t.Helper()
		objs, err := install.Objects(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Apply(ctx, objs); err != nil {
			t.Fatalf("install: %v", err)
		}
	}
	apply(t, install.Config{ControlPlaneURL: url})
	cluster.CreateNamespace(t, "shop", map[string]string{install.InjectionLabel: "enabled"})

	t.Run("after install, no caBundle yet", func(t *testing.T) {
		checkOutput(t, true, []string{"Checking installation (after install)", "ok    CRD virtualservices.networking.istio.io established",
			"ok    CRD ratelimitpolicies.trellis.dev established",
			"warn  control plane (outside the cluster) ready", "pass --monitoring-url",
			"fail  MutatingWebhookConfiguration trellis-sidecar-injector webhook inject.sidecar.trellis.dev has a caBundle",
			"ok    namespaces with trellis-injection=enabled  shop"}, "check", "--kubeconfig", kc)
	})

	t.Run("analyze the cluster", func(t *testing.T) {
		dyn, err := dynamic.NewForConfig(cluster.Config)
		if err != nil {
			t.Fatal(err)
		}
		vs := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "reviews", "namespace": "shop"},
			"spec": map[string]any{
				"hosts": []any{"reviews"},
				"tls": []any{map[string]any{
					"match": []any{map[string]any{"sniHosts": []any{"reviews"}}},
					"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}}},
				}},
				"http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}}}}},
			},
		}}
		for _, name := range []string{"reviews", "ratings"} {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
				Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}},
			}
			if _, err := cluster.Client.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				t.Fatalf("creating Service: %v", err)
			}
		}
		gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
		if _, err := dyn.Resource(gvr).Namespace("shop").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating VirtualService: %v", err)
		}
		checkOutput(t, false, []string{
			"warning: VirtualService shop/reviews: spec.tls: not supported",
			"kubernetes:virtualservices.networking.istio.io/shop/reviews",
			"0 errors, 1 warning"}, "analyze", "--kubeconfig", kc)

		// A weight of 150 is refused by the validating webhook when it runs; here
		// it fails open (no caBundle, nothing listening), so analyze must catch it.
		bad := vs.DeepCopy()
		bad.SetName("ratings")
		bad.Object["spec"] = map[string]any{
			"hosts": []any{"ratings"},
			"http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": "ratings"}, "weight": int64(150)},
			}}},
		}
		if _, err := dyn.Resource(gvr).Namespace("shop").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating VirtualService: %v", err)
		}
		checkOutput(t, true, []string{"kubernetes:virtualservices.networking.istio.io/shop/ratings", "error:", "1 error"}, "analyze", "--kubeconfig", kc)
	})

	t.Run("after install, healthy", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(ca)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, install.Config{ControlPlaneURL: url, CABundle: data})
		monitoring := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/ready" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, "ready\n")
		}))
		defer monitoring.Close()
		out := checkOutput(t, false, []string{"ok    control plane (outside the cluster) ready", "/ready: ready",
			"ok    ValidatingWebhookConfiguration trellis-validator webhook validation.trellis.dev has a caBundle"},
			"check", "--kubeconfig", kc, "--monitoring-url", monitoring.URL)
		if strings.Contains(out, "fail") {
			t.Errorf("a check failed:\n%s", out)
		}
		checkOutput(t, false, []string{"Checking prerequisites (before install)"}, "check", "--kubeconfig", kc, "--pre")
	})
}

package service_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/ratelimit/service"
)

var policiesGVR = schema.GroupVersionResource{Group: "trellis.dev", Version: "v1alpha1", Resource: "ratelimitpolicies"}

// syncBuffer is a log destination safe for the service's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func createPolicy(ctx context.Context, t *testing.T, client dynamic.Interface, doc string) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Resource(policiesGVR).Namespace(obj.GetNamespace()).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating RateLimitPolicy %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

// waitFor polls the service until cond holds for a check's answer.
func waitFor(t *testing.T, addr, what string, cond func(*rlsv3.RateLimitResponse) bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if cond(checkOnce(t, addr)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// TestRunWatchesKubernetes runs the service against a real API server: a
// RateLimitPolicy created through the API is enforced, an invalid one is logged and
// left out, and deleting the policy lifts its limit.
func TestRunWatchesKubernetes(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	objs, err := install.Objects(install.Config{})
	if err != nil {
		t.Fatal(err)
	}
	crds := slices.DeleteFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() != "CustomResourceDefinition" })
	ic, err := install.NewClient(cluster.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Apply(ctx, crds); err != nil {
		t.Fatalf("installing the CRDs: %v", err)
	}
	client, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"shop", "other"} {
		nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		if _, err := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating namespace %s: %v", ns, err)
		}
	}
	// Present before the service starts: the initial list must skip it.
	createPolicy(ctx, t, client, strings.ReplaceAll(policyYAML("0"), "namespace: shop", "namespace: other"))

	var logs syncBuffer
	r := start(t, service.Config{
		Kubernetes: cluster.Config,
		Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if got := checkOnce(t, r.addr); got.OverallCode != rlsv3.RateLimitResponse_OK || got.Statuses[0].GetCurrentLimit() != nil {
		t.Fatalf("before any valid policy: %v, want OK without a limit", got)
	}
	if want := `msg="RateLimitPolicy skipped: invalid" component=kubernetes-source namespace=other name=checkout`; !strings.Contains(logs.String(), want) ||
		!strings.Contains(logs.String(), "field=spec.rules[0].limit.requests") {
		t.Errorf("the invalid policy was not logged with its namespace, name and field; log:\n%s", logs.String())
	}

	createPolicy(ctx, t, client, policyYAML("3"))
	waitFor(t, r.addr, "the policy is applied", func(resp *rlsv3.RateLimitResponse) bool {
		return resp.Statuses[0].GetCurrentLimit().GetRequestsPerUnit() == 3
	})
	// waitFor's last check counted one request of the 3; the rest are counted below.
	var codes []rlsv3.RateLimitResponse_Code
	for range 3 {
		codes = append(codes, checkOnce(t, r.addr).OverallCode)
	}
	want := []rlsv3.RateLimitResponse_Code{rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OK, rlsv3.RateLimitResponse_OVER_LIMIT}
	if !slices.Equal(codes, want) {
		t.Errorf("codes after the first check %v, want %v", codes, want)
	}

	if err := client.Resource(policiesGVR).Namespace("shop").Delete(ctx, "checkout", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the policy: %v", err)
	}
	waitFor(t, r.addr, "the limit is lifted", func(resp *rlsv3.RateLimitResponse) bool {
		return resp.OverallCode == rlsv3.RateLimitResponse_OK && resp.Statuses[0].GetCurrentLimit() == nil
	})
}

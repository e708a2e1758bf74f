package install_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"trellis.dev/trellis/internal/kube/inject"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/kube/webhook"
)

// TestAgainstAPIServer installs Trellis into a real kube-apiserver with the webhooks
// pointing at an httptest TLS server, then checks what the API server does with pods
// and config: injection, opt-out, validation; and that uninstall removes it all.
func TestAgainstAPIServer(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))

	srv := httptest.NewUnstartedServer(webhook.Handler(webhook.Config{
		Inject: inject.Config{Image: "example.com/trellis:test"},
		Logger: logger,
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	// A CRD someone else installed (as a cluster with the Gateway API would have):
	// install must leave it alone, and so must uninstall.
	ext := apiextensionsclient.NewForConfigOrDie(cluster.Config)
	foreign := install.Kinds()[slices.IndexFunc(install.Kinds(), func(k install.Kind) bool { return k.Kind == "GRPCRoute" })].CRD()
	foreign.Labels = map[string]string{"owner": "someone-else"}
	foreign.Annotations["api-approved.kubernetes.io"] = "unapproved, test"
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the foreign CRD: %v", err)
	}

	cfg := install.Config{ControlPlaneURL: srv.URL, CABundle: caPEM}
	objs, err := install.Objects(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := install.NewClient(cluster.Config, logger)
	if err != nil {
		t.Fatal(err)
	}
	results, err := client.Apply(ctx, objs)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(results) != len(objs) {
		t.Errorf("Apply reported %d results for %d objects", len(results), len(objs))
	}
	for _, r := range results {
		if want := install.Applied; r.Name == foreign.Name {
			want = install.Kept
			if r.Action != want {
				t.Errorf("%s: %s, want %s", r.Name, r.Action, want)
			}
		} else if r.Action != want {
			t.Errorf("%s: %s, want %s", r.Name, r.Action, want)
		}
	}

	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	pods := cluster.Client.CoreV1()

	t.Run("CRDs are established", func(t *testing.T) {
		for _, k := range install.Kinds() {
			crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, k.CRDName(), metav1.GetOptions{})
			if err != nil {
				t.Errorf("getting CRD %s: %v", k.CRDName(), err)
				continue
			}
			if !install.Established(crd) {
				t.Errorf("CRD %s is not established: %+v", k.CRDName(), crd.Status.Conditions)
			}
		}
	})

	t.Run("webhooks and control plane objects", func(t *testing.T) {
		adm := cluster.Client.AdmissionregistrationV1()
		if _, err := adm.MutatingWebhookConfigurations().Get(ctx, install.InjectorName, metav1.GetOptions{}); err != nil {
			t.Errorf("injector: %v", err)
		}
		if _, err := adm.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{}); err != nil {
			t.Errorf("validator: %v", err)
		}
		if _, err := cluster.Client.CoreV1().Services(install.DefaultNamespace).Get(ctx, install.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("service: %v", err)
		}
		_, err := cluster.Client.AppsV1().Deployments(install.DefaultNamespace).Get(ctx, install.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("with --control-plane-url the Deployment must not exist; Get: %v", err)
		}
	})

	t.Run("apply again changes nothing", func(t *testing.T) {
		if _, err := client.Apply(ctx, objs); err != nil {
			t.Errorf("second Apply: %v", err)
		}
	})

	cluster.CreateNamespace(t, "shop", map[string]string{install.InjectionLabel: "enabled"})
	cluster.CreateNamespace(t, "plain", nil)
	newPod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
	}

	// The API server picks up new webhook configurations asynchronously: wait until a
	// dry-run pod comes back injected.
	waitFor(ctx, t, "the injection webhook to take effect", func() bool {
		got, err := pods.Pods("shop").Create(ctx, newPod("probe", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && got.Annotations[inject.StatusAnnotation] != ""
	})

	t.Run("a pod in a labelled namespace is injected", func(t *testing.T) {
		got, err := pods.Pods("shop").Create(ctx, newPod("app", map[string]string{"app": "shop"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod: %v", err)
		}
		inits := got.Spec.InitContainers
		if len(inits) < 2 || inits[0].Name != inject.InitName || inits[1].Name != inject.ProxyName {
			t.Fatalf("init containers %v, want %s then %s", names(inits), inject.InitName, inject.ProxyName)
		}
		if rp := inits[1].RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
			t.Errorf("%s restartPolicy %v, want Always (a native sidecar)", inject.ProxyName, rp)
		}
		if inits[1].StartupProbe == nil {
			t.Errorf("%s has no startup probe", inject.ProxyName)
		}
		if got.Annotations[inject.StatusAnnotation] != "injected" {
			t.Errorf("annotations %v lack %s", got.Annotations, inject.StatusAnnotation)
		}
		if len(got.Spec.Containers) != 1 || got.Spec.Containers[0].Name != "app" {
			t.Errorf("containers %v, want just app", names(got.Spec.Containers))
		}
	})

	untouched := []struct {
		name, namespace string
		pod             *corev1.Pod
	}{
		{name: "opt-out label", namespace: "shop", pod: newPod("opted-out", map[string]string{inject.InjectKey: "false"})},
		{name: "namespace without the label", namespace: "plain", pod: newPod("plain", nil)},
	}
	for _, tt := range untouched {
		t.Run("untouched: "+tt.name, func(t *testing.T) {
			got, err := pods.Pods(tt.namespace).Create(ctx, tt.pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating pod: %v", err)
			}
			if len(got.Spec.InitContainers) != 0 || got.Annotations[inject.StatusAnnotation] != "" {
				t.Errorf("pod was injected: init containers %v, annotations %v", names(got.Spec.InitContainers), got.Annotations)
			}
		})
	}

	t.Run("a pod with a malformed annotation is refused", func(t *testing.T) {
		p := newPod("bad-annotation", nil)
		p.Annotations = map[string]string{inject.ExcludeOutboundPorts: "postgres"}
		_, err := pods.Pods("shop").Create(ctx, p, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), inject.ExcludeOutboundPorts) {
			t.Errorf("error %v, want a refusal naming %s", err, inject.ExcludeOutboundPorts)
		}
	})

	vsResource := func(version string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: install.IstioNetworkingGroup, Version: version, Resource: "virtualservices"}).Namespace("shop")
	}
	virtualService := func(version, name string, weights ...int64) *unstructured.Unstructured {
		var route []any
		for i, w := range weights {
			route = append(route, map[string]any{
				"destination": map[string]any{"host": "reviews", "subset": "v" + string(rune('1'+i))},
				"weight":      w,
			})
		}
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": install.IstioNetworkingGroup + "/" + version,
			"kind":       "VirtualService",
			"metadata":   map[string]any{"name": name, "namespace": "shop"},
			"spec":       map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{"route": route}}},
		}}
	}

	waitFor(ctx, t, "the validating webhook to take effect", func() bool {
		_, err := vsResource("v1").Create(ctx, virtualService("v1", "probe", 150), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "denied the request")
	})

	t.Run("a VirtualService with a weight of 150 is refused", func(t *testing.T) {
		_, err := vsResource("v1").Create(ctx, virtualService("v1", "too-heavy", 150), metav1.CreateOptions{})
		if err == nil {
			t.Fatal("created; want a refusal")
		}
		for _, want := range []string{"denied the request", "spec.http[0].route[0].weight", "150"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		t.Logf("refused: %v", err)
	})

	for _, version := range []string{"v1", "v1beta1", "v1alpha3"} {
		t.Run("a valid VirtualService is accepted as "+version, func(t *testing.T) {
			if _, err := vsResource(version).Create(ctx, virtualService(version, "split-"+version, 90, 10), metav1.CreateOptions{}); err != nil {
				t.Errorf("creating: %v", err)
			}
		})
	}

	httpRoute := func(name string, path, backend map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": install.GatewayGroup + "/v1",
			"kind":       "HTTPRoute",
			"metadata":   map[string]any{"name": name, "namespace": "shop"},
			"spec": map[string]any{
				"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "reviews"}},
				"rules": []any{map[string]any{
					"matches":     []any{map[string]any{"path": path}},
					"backendRefs": []any{backend},
				}},
			},
		}}
	}
	routes := dyn.Resource(schema.GroupVersionResource{Group: install.GatewayGroup, Version: "v1", Resource: "httproutes"}).Namespace("shop")
	backend := map[string]any{"name": "reviews", "port": int64(9080)}
	refusedRoutes := []struct {
		name  string
		route *unstructured.Unstructured
		want  []string
	}{
		{
			name:  "bad regex",
			route: httpRoute("bad-regex", map[string]any{"type": "RegularExpression", "value": "/api/(v1"}, backend),
			want:  []string{"spec.rules[0].matches[0].path.value", "does not compile"},
		},
		{
			name:  "unknown field",
			route: httpRoute("misspelt", map[string]any{"value": "/"}, map[string]any{"name": "reviews", "port": int64(9080), "wieght": int64(1)}),
			want:  []string{"spec.rules[0].backendRefs[0].wieght", "unknown field"},
		},
	}
	for _, tt := range refusedRoutes {
		t.Run("an HTTPRoute is refused: "+tt.name, func(t *testing.T) {
			_, err := routes.Create(ctx, tt.route, metav1.CreateOptions{})
			if err == nil {
				t.Fatal("created; want a refusal")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
	t.Run("a valid HTTPRoute is accepted", func(t *testing.T) {
		route := httpRoute("good", map[string]any{"type": "RegularExpression", "value": "/api/v[0-9]+"}, backend)
		if _, err := routes.Create(ctx, route, metav1.CreateOptions{}); err != nil {
			t.Errorf("creating: %v", err)
		}
	})

	t.Run("uninstall removes everything", func(t *testing.T) {
		res, err := client.Uninstall(ctx, mustObjects(t, install.Config{}))
		if err != nil {
			t.Fatalf("Uninstall: %v", err)
		}
		for _, r := range res {
			if (r.Action == install.Kept) != (r.Name == foreign.Name) {
				t.Errorf("%s; only the foreign CRD %s is to be kept", r, foreign.Name)
			}
		}
		adm := cluster.Client.AdmissionregistrationV1()
		if _, err := adm.MutatingWebhookConfigurations().Get(ctx, install.InjectorName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("injector still there: %v", err)
		}
		if _, err := adm.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("validator still there: %v", err)
		}
		// CRDs go once their objects are gone (the API server's own finalizer); the
		// namespace stays Terminating without a controller manager, so it only has to
		// be marked for deletion.
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for _, k := range install.Kinds() {
			if k.CRDName() == foreign.Name {
				continue
			}
			waitGone(ctx, t, func() (string, error) {
				crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, k.CRDName(), metav1.GetOptions{})
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("CRD %s: finalizers %v, conditions %+v", crd.Name, crd.Finalizers, crd.Status.Conditions), nil
			})
		}
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, foreign.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("the foreign CRD is gone: %v", err)
		}
		ns, err := cluster.Client.CoreV1().Namespaces().Get(ctx, install.DefaultNamespace, metav1.GetOptions{})
		if err == nil && ns.DeletionTimestamp == nil {
			t.Errorf("namespace %s is not being deleted", install.DefaultNamespace)
		}
		again, err := client.Uninstall(ctx, mustObjects(t, install.Config{}))
		if err != nil {
			t.Fatalf("second Uninstall: %v", err)
		}
		for _, r := range again {
			if r.Action == install.Deleted {
				t.Errorf("second uninstall deleted %s again", r)
			}
		}
	})
}

func mustObjects(t *testing.T, cfg install.Config) []*unstructured.Unstructured {
	t.Helper()
	objs, err := install.Objects(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// waitFor polls cond until it holds, failing t if ctx ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitGone polls get until it reports NotFound; get describes the object otherwise.
func waitGone(ctx context.Context, t *testing.T, get func() (string, error)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		what, err := get()
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("still there when the test timed out: %s (last error: %v)", what, err)
		case <-tick.C:
		}
	}
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

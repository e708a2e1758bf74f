package kube_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/source/kube"
	"trellis.dev/trellis/internal/store"
)

// poll calls cond every 20ms until it holds, failing the test at the deadline.
func poll(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// applyCRDs installs the CRDs of every kind Trellis reads, and nothing else.
func applyCRDs(ctx context.Context, t *testing.T, cluster *kubetest.Cluster, log *slog.Logger) {
	t.Helper()
	objs, err := install.Objects(install.Config{ControlPlaneURL: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	var crds []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	client, err := install.NewClient(cluster.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Apply(ctx, crds); err != nil {
		t.Fatalf("applying CRDs: %v", err)
	}
}

func pod(name string, labels map[string]string, sa string, sidecar bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "app", Image: "example.com/app"}},
		},
	}
	if sidecar {
		p.Spec.InitContainers = []corev1.Container{{Name: "trellis-proxy", Image: "example.com/trellis", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}}
	}
	return p
}

func endpoint(ip, podName string, ready bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
	if podName != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: podName}
	}
	return ep
}

func TestSource(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	applyCRDs(ctx, t, cluster, log)
	cluster.CreateNamespace(t, "shop", nil)
	c := cluster.Client
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo-reviews", Namespace: "shop"}}
	if _, err := c.CoreV1().ServiceAccounts("shop").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, p := range []*corev1.Pod{
		pod("reviews-1", map[string]string{"app": "reviews", "version": "v1"}, "bookinfo-reviews", true),
		pod("reviews-2", map[string]string{"app": "reviews", "version": "v2"}, "", false),
	} {
		if _, err := c.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating pod %s: %v", p.Name, err)
		}
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(8080)},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			},
		},
	}
	created, err := c.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "reviews-abc", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			endpoint("10.1.0.1", "reviews-1", true),
			endpoint("10.1.0.2", "reviews-2", true),
			endpoint("10.1.0.3", "reviews-3", false), // not ready
		},
	}
	if _, err := c.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating EndpointSlice: %v", err)
	}
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	vsGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	for _, vs := range []map[string]any{
		{"metadata": map[string]any{"name": "reviews"}, "spec": map[string]any{
			"hosts": []any{"reviews"}, "http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}}}}}}},
		{"metadata": map[string]any{"name": "broken"}, "spec": map[string]any{
			"hosts": []any{"reviews"}, "htp": []any{}}},
	} {
		obj := &unstructured.Unstructured{Object: vs}
		obj.SetAPIVersion("networking.istio.io/v1")
		obj.SetKind("VirtualService")
		if _, err := dyn.Resource(vsGVR).Namespace("shop").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating VirtualService: %v", err)
		}
	}

	st := store.New()
	src, err := kube.New(kube.Config{Client: c, Dynamic: dyn, Store: st, Logger: log, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-src.Synced():
	case err := <-done:
		t.Fatalf("Run returned before syncing: %v", err)
	case <-ctx.Done():
		t.Fatal("timed out waiting for the source to sync")
	}

	t.Run("services", func(t *testing.T) {
		snap := st.Snapshot()
		var got []string
		for _, s := range snap.Config.Services {
			if s.Namespace != "shop" {
				continue // default/kubernetes
			}
			for _, p := range s.Spec.Ports {
				got = append(got, s.Namespace+"/"+s.Name+" "+p.Name+" "+string(p.Protocol)+" "+p.TargetPort.String())
			}
			if s.Name == "reviews" && s.Spec.ClusterIP != created.Spec.ClusterIP {
				t.Errorf("cluster IP = %q, want %q", s.Spec.ClusterIP, created.Spec.ClusterIP)
			}
		}
		if diff := cmp.Diff([]string{"shop/reviews http TCP 8080"}, got); diff != "" {
			t.Errorf("services (-want +got):\n%s", diff)
		}
	})
	t.Run("custom resources", func(t *testing.T) {
		snap := st.Snapshot()
		var got []string
		for _, vs := range snap.Config.VirtualServices {
			got = append(got, vs.Namespace+"/"+vs.Name)
		}
		if diff := cmp.Diff([]string{"shop/reviews"}, got); diff != "" {
			t.Errorf("virtual services (-want +got):\n%s", diff)
		}
		errs := src.Errors()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "VirtualService shop/broken: spec.htp: unknown field") {
			t.Errorf("Errors() = %v, want one naming VirtualService shop/broken and spec.htp", errs)
		}
	})
	t.Run("endpoints", func(t *testing.T) {
		want := []model.DiscoveredEndpoint{
			{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.1:8080", NodeID: "reviews-1.shop",
				Labels: map[string]string{"app": "reviews", "version": "v1"}, ServiceAccount: "bookinfo-reviews", Sidecar: true},
			{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.2:8080", NodeID: "reviews-2.shop",
				Labels: map[string]string{"app": "reviews", "version": "v2"}, ServiceAccount: "default"},
		}
		if diff := cmp.Diff(want, src.Endpoints()); diff != "" {
			t.Errorf("endpoints (-want +got):\n%s", diff)
		}
	})
	t.Run("changes", func(t *testing.T) {
		changed, unsubscribe := src.Subscribe()
		defer unsubscribe()
		version := st.Snapshot().Version
		// An endpoint becomes ready; a VirtualService is deleted.
		s, err := c.DiscoveryV1().EndpointSlices("shop").Get(ctx, "reviews-abc", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoints[2].Conditions.Ready = ptr.To(true)
		if _, err := c.DiscoveryV1().EndpointSlices("shop").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("no signal after an endpoint change")
		}
		poll(t, "the third endpoint", 10*time.Second, func() bool { return len(src.Endpoints()) == 3 })
		if got := src.Endpoints()[2]; got.Address != "10.1.0.3:8080" || got.Sidecar || got.ServiceAccount != "" {
			t.Errorf("endpoint of an unknown pod = %+v, want 10.1.0.3:8080 without sidecar or service account", got)
		}
		if err := dyn.Resource(vsGVR).Namespace("shop").Delete(ctx, "reviews", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the VirtualService to go", 10*time.Second, func() bool {
			snap := st.Snapshot()
			return snap.Version > version && len(snap.Config.VirtualServices) == 0
		})
		// A pod's status alone does not change its endpoints.
		p, err := c.CoreV1().Pods("shop").Get(ctx, "reviews-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.PodIP = "10.1.0.1"
		if _, err := c.CoreV1().Pods("shop").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// A label change does.
		p, err = c.CoreV1().Pods("shop").Get(ctx, "reviews-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Labels["version"] = "v3"
		if _, err := c.CoreV1().Pods("shop").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, "the new label on the endpoint", 10*time.Second, func() bool {
			eps := src.Endpoints()
			return len(eps) == 3 && eps[0].Labels["version"] == "v3"
		})
	})
}

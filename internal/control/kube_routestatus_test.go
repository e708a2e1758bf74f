package control

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/kube/routestatus"
)

// TestKubernetesRouteStatus runs a control plane against a real API server and
// checks the status the leader writes on HTTPRoutes with a Service parent: Accepted
// and ResolvedRefs when the backend exists, BackendNotFound when it does not, no
// rewrite when nothing changed, and lastTransitionTime kept across a change.
func TestKubernetesRouteStatus(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := cluster.Client

	webhook := listenLoopback(t)
	objs, err := install.Objects(install.Config{ControlPlaneURL: "https://" + webhook.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	installer, err := install.NewClient(cluster.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := installer.Apply(ctx, objs); err != nil {
		t.Fatalf("install: %v", err)
	}
	cluster.CreateNamespace(t, "web", nil)
	for _, name := range []string{"echo", "echo-v2"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		if _, err := c.CoreV1().Services("web").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r := startReplica(ctx, t, cluster, "a", webhook, t.Output())
	waitFor(t, "/ready", 60*time.Second, func() bool {
		code, _ := get(ctx, t, r.mon+"/ready")
		return code == http.StatusOK
	})

	gw, err := gatewayclient.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	routes := gw.GatewayV1().HTTPRoutes("web")
	route := func(name, backend string) *gatewayv1.HTTPRoute {
		return &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "web"},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
					Group: new(gatewayv1.Group("")), Kind: new(gatewayv1.Kind("Service")), Name: "echo", Port: new(gatewayv1.PortNumber(80))}}},
				Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(backend), Port: new(gatewayv1.PortNumber(80))}}}}}},
			}}
	}
	for _, r := range []*gatewayv1.HTTPRoute{route("to-v2", "echo-v2"), route("broken", "missing")} {
		if _, err := routes.Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// conditions returns the route's conditions from this controller, by type, as
	// "status/reason/observedGeneration".
	conditions := func(name string) (map[string]string, *gatewayv1.HTTPRoute) {
		hr, err := routes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range hr.Status.Parents {
			if p.ControllerName != routestatus.ControllerName {
				continue
			}
			for _, c := range p.Conditions {
				out[c.Type] = string(c.Status) + "/" + c.Reason + "/" + strconv.FormatInt(c.ObservedGeneration, 10)
			}
		}
		return out, hr
	}
	waitStatus := func(name string, want map[string]string) *gatewayv1.HTTPRoute {
		t.Helper()
		var got map[string]string
		var hr *gatewayv1.HTTPRoute
		deadline := time.Now().Add(30 * time.Second)
		for {
			if got, hr = conditions(name); cmp.Equal(want, got) {
				return hr
			}
			if time.Now().After(deadline) {
				t.Fatalf("status of %s (-want +got):\n%s", name, cmp.Diff(want, got))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	ok := waitStatus("to-v2", map[string]string{"Accepted": "True/Accepted/1", "ResolvedRefs": "True/ResolvedRefs/1"})
	broken := waitStatus("broken", map[string]string{"Accepted": "True/Accepted/1", "ResolvedRefs": "False/BackendNotFound/1"})
	if p := ok.Status.Parents; len(p) != 1 || p[0].ParentRef.Name != "echo" {
		t.Errorf("parents = %+v, want one entry for Service echo", p)
	}

	t.Run("not rewritten when unchanged", func(t *testing.T) {
		// A change elsewhere makes the control plane translate again.
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "web"},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		if _, err := c.CoreV1().Services("web").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The writer passes every second; watch several passes.
		until := time.Now().Add(3 * time.Second)
		for time.Now().Before(until) {
			for _, before := range []*gatewayv1.HTTPRoute{ok, broken} {
				_, now := conditions(before.Name)
				if now.ResourceVersion != before.ResourceVersion {
					t.Fatalf("%s rewritten: resourceVersion %s -> %s\n%s", before.Name, before.ResourceVersion, now.ResourceVersion,
						cmp.Diff(before.Status, now.Status))
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("fixed backend keeps Accepted's lastTransitionTime", func(t *testing.T) {
		hr, err := routes.Get(ctx, "broken", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hr.Spec.Rules[0].BackendRefs[0].Name = "echo-v2"
		if _, err := routes.Update(ctx, hr, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		fixed := waitStatus("broken", map[string]string{"Accepted": "True/Accepted/2", "ResolvedRefs": "True/ResolvedRefs/2"})
		accepted := func(hr *gatewayv1.HTTPRoute) metav1.Time {
			for _, c := range hr.Status.Parents[0].Conditions {
				if c.Type == "Accepted" {
					return c.LastTransitionTime
				}
			}
			return metav1.Time{}
		}
		if before, after := accepted(broken), accepted(fixed); !before.Equal(&after) {
			t.Errorf("Accepted lastTransitionTime changed: %v -> %v", before, after)
		}
	})
}

package install

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"trellis.dev/trellis/internal/config"
)

func TestObjects(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		wantKinds     []string // besides the CRDs, in order
		wantNamespace string
		wantValidator string // failurePolicy
		wantURL       string // the injector's clientConfig.url, "" for the Service
	}{
		{
			name: "defaults",
			wantKinds: []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
				"Service", "Deployment", "PodDisruptionBudget", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"},
			wantNamespace: DefaultNamespace,
			wantValidator: "Ignore",
		},
		{
			name: "control plane outside the cluster",
			cfg:  Config{Namespace: "mesh", ControlPlaneURL: "https://127.0.0.1:9443", CABundle: []byte("pem")},
			wantKinds: []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
				"Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"},
			wantNamespace: "mesh",
			wantValidator: "Fail",
			wantURL:       "https://127.0.0.1:9443/inject",
		},
		{
			name: "rate-limit service",
			cfg:  Config{Namespace: "mesh", RateLimit: true, RedisAddr: "redis:6379"},
			wantKinds: []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
				"Service", "Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
				"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"},
			wantNamespace: "mesh",
			wantValidator: "Ignore",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Objects(tt.cfg)
			if err != nil {
				t.Fatalf("Objects: %v", err)
			}
			var kinds []string
			byKind := map[string]*unstructured.Unstructured{}
			for i, o := range objs {
				if o.GetLabels()[ManagedByLabel] != Name {
					t.Errorf("%s %s lacks %s=%s", o.GetKind(), o.GetName(), ManagedByLabel, Name)
				}
				if _, hasStatus := o.Object["status"]; hasStatus {
					t.Errorf("%s %s has a status", o.GetKind(), o.GetName())
				}
				if o.GetKind() == "CustomResourceDefinition" {
					if i >= len(Kinds()) {
						t.Errorf("CRD %s comes after other objects", o.GetName())
					}
					continue
				}
				kinds = append(kinds, o.GetKind())
				byKind[o.GetKind()] = o
				if ns := o.GetNamespace(); ns != "" && ns != tt.wantNamespace {
					t.Errorf("%s %s in namespace %s, want %s", o.GetKind(), o.GetName(), ns, tt.wantNamespace)
				}
			}
			if diff := cmp.Diff(tt.wantKinds, kinds); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
			policy, _, _ := unstructured.NestedString(byKind["ValidatingWebhookConfiguration"].Object["webhooks"].([]any)[0].(map[string]any), "failurePolicy")
			if policy != tt.wantValidator {
				t.Errorf("validator failurePolicy %q, want %q", policy, tt.wantValidator)
			}
			url, _, _ := unstructured.NestedString(byKind["MutatingWebhookConfiguration"].Object["webhooks"].([]any)[0].(map[string]any), "clientConfig", "url")
			if url != tt.wantURL {
				t.Errorf("injector url %q, want %q", url, tt.wantURL)
			}
		})
	}
}

func TestKindsCoverEveryGroupVersion(t *testing.T) {
	var got []string
	for _, k := range Kinds() {
		for _, v := range k.Versions {
			got = append(got, k.Group+"/"+v+" "+k.Kind)
		}
	}
	for _, want := range []string{
		"networking.istio.io/v1alpha3 VirtualService", "networking.istio.io/v1beta1 Sidecar",
		"security.istio.io/v1beta1 AuthorizationPolicy", "gateway.networking.k8s.io/v1beta1 HTTPRoute",
		"gateway.networking.k8s.io/v1 GRPCRoute", "trellis.dev/v1alpha1 RateLimitPolicy",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no CRD serves %s", want)
		}
	}
}

func TestObjectsRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "negative replicas", cfg: Config{Replicas: -1}, wantErr: "negative"},
		{name: "rate limit without Redis", cfg: Config{RateLimit: true}, wantErr: "needs a Redis address (--redis-addr"},
		{name: "Redis without rate limit", cfg: Config{RedisAddr: "redis:6379"}, wantErr: "only used with the rate-limit service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Objects(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Objects error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestRateLimitObjects checks the rate-limit service's Deployment and Service and the
// control plane's flag pointing at it.
func TestRateLimitObjects(t *testing.T) {
	objs, err := Objects(Config{Namespace: "mesh", Image: "example.com/trellis:1", RateLimit: true, RedisAddr: "redis.data:6379"})
	if err != nil {
		t.Fatalf("Objects: %v", err)
	}
	find := func(kind, name string) *unstructured.Unstructured {
		for _, o := range objs {
			if o.GetKind() == kind && o.GetName() == name {
				return o
			}
		}
		t.Fatalf("no %s %s", kind, name)
		return nil
	}
	container := func(d *unstructured.Unstructured) map[string]any {
		cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		return cs[0].(map[string]any)
	}

	rl := find("Deployment", RateLimitName)
	if n, _, _ := unstructured.NestedInt64(rl.Object, "spec", "replicas"); n != RateLimitReplicas {
		t.Errorf("rate-limit replicas %d, want %d", n, RateLimitReplicas)
	}
	c := container(rl)
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	wantArgs := []string{"ratelimit", "--addr", ":8081", "--monitoring-addr", ":15014", "--store", "redis",
		"--redis-addr", "redis.data:6379", "--failure-mode", "open"}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("rate-limit args (-want +got):\n%s", diff)
	}
	if img, _, _ := unstructured.NestedString(c, "image"); img != "example.com/trellis:1" {
		t.Errorf("rate-limit image %q", img)
	}
	for _, p := range []string{"readinessProbe", "livenessProbe"} {
		if port, _, _ := unstructured.NestedInt64(c, p, "httpGet", "port"); port != MonitoringPort {
			t.Errorf("%s on port %d, want %d", p, port, MonitoringPort)
		}
	}

	if sa, _, _ := unstructured.NestedString(rl.Object, "spec", "template", "spec", "serviceAccountName"); sa != RateLimitName {
		t.Errorf("rate-limit serviceAccountName %q, want %q", sa, RateLimitName)
	}
	if mount, _, _ := unstructured.NestedBool(rl.Object, "spec", "template", "spec", "automountServiceAccountToken"); !mount {
		t.Error("rate-limit pods do not mount their service-account token: they cannot watch RateLimitPolicies")
	}
	rules, _, _ := unstructured.NestedSlice(find("ClusterRole", RateLimitName).Object, "rules")
	wantRules := []any{map[string]any{"apiGroups": []any{"trellis.dev"}, "resources": []any{"ratelimitpolicies"}, "verbs": []any{"get", "list", "watch"}}}
	if diff := cmp.Diff(wantRules, rules); diff != "" {
		t.Errorf("rate-limit ClusterRole rules (-want +got):\n%s", diff)
	}
	subjects, _, _ := unstructured.NestedSlice(find("ClusterRoleBinding", RateLimitName).Object, "subjects")
	wantSubjects := []any{map[string]any{"kind": "ServiceAccount", "name": RateLimitName, "namespace": "mesh"}}
	if diff := cmp.Diff(wantSubjects, subjects); diff != "" {
		t.Errorf("rate-limit ClusterRoleBinding subjects (-want +got):\n%s", diff)
	}

	svc := find("Service", RateLimitName)
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	wantPorts := []any{map[string]any{"name": "grpc", "port": int64(8081), "targetPort": int64(8081), "protocol": "TCP"}}
	if diff := cmp.Diff(wantPorts, ports); diff != "" {
		t.Errorf("rate-limit Service ports (-want +got):\n%s", diff)
	}
	sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	podLabels, _, _ := unstructured.NestedStringMap(rl.Object, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("the Service selects %s=%s, the pods have %q", k, v, podLabels[k])
		}
	}

	cpArgs, _, _ := unstructured.NestedStringSlice(container(find("Deployment", Name)), "args")
	if !slices.Contains(cpArgs, "--ratelimit-addr=trellis-ratelimit.mesh.svc:8081") {
		t.Errorf("control plane args %q lack --ratelimit-addr=trellis-ratelimit.mesh.svc:8081", cpArgs)
	}
}

// TestKindsAreReadByConfig checks that every kind and version a CRD serves is one
// internal/config decodes, so that the validating webhook knows every object it sees.
func TestKindsAreReadByConfig(t *testing.T) {
	for _, k := range Kinds() {
		for _, v := range k.Versions {
			doc := "apiVersion: " + k.Group + "/" + v + "\nkind: " + k.Kind + "\nmetadata: {name: x, namespace: y}\nspec: {}\n"
			_, err := config.Parse("crd.yaml", []byte(doc))
			if err != nil && strings.Contains(err.Error(), "unknown kind") {
				t.Errorf("%s/%s %s is not a kind internal/config reads: %v", k.Group, v, k.Kind, err)
			}
		}
	}
}

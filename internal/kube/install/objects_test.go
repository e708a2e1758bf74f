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

func TestObjectsRejectsNegativeReplicas(t *testing.T) {
	if _, err := Objects(Config{Replicas: -1}); err == nil {
		t.Error("Objects accepted -1 replicas")
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

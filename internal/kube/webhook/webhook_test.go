package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"trellis.dev/trellis/internal/kube/inject"
)

// post sends an AdmissionReview for obj to path on srv and returns the response.
func post(t *testing.T, srv *httptest.Server, path string, req admissionv1.AdmissionRequest, obj any) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	req.UID = types.UID("uid-1")
	req.Object = runtime.RawExtension{Raw: raw}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(hreq)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, data)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("decoding response %s: %v", data, err)
	}
	if out.Response == nil || out.Response.UID != "uid-1" {
		t.Fatalf("response %+v does not answer request uid-1", out.Response)
	}
	return out.Response
}

func newServer(t *testing.T) *httptest.Server {
	srv := httptest.NewTLSServer(Handler(Config{Inject: inject.Config{Image: "example.com/trellis:test"}}))
	t.Cleanup(srv.Close)
	return srv
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

func TestInjectWebhook(t *testing.T) {
	srv := newServer(t)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "shop", Labels: map[string]string{"app": "shop"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}

	t.Run("patch injects", func(t *testing.T) {
		resp := post(t, srv, InjectPath, admissionv1.AdmissionRequest{Kind: podKind, Namespace: "shop", Operation: admissionv1.Create}, pod)
		if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("response %+v, want allowed with a JSON patch", resp)
		}
		patch, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("decoding patch %s: %v", resp.Patch, err)
		}
		orig, _ := json.Marshal(pod)
		patched, err := patch.Apply(orig)
		if err != nil {
			t.Fatalf("applying patch %s: %v", resp.Patch, err)
		}
		var got corev1.Pod
		if err := json.Unmarshal(patched, &got); err != nil {
			t.Fatal(err)
		}
		want, err := inject.Pod(pod, inject.Config{Image: "example.com/trellis:test"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, &got); diff != "" {
			t.Errorf("patched pod differs from inject.Pod (-want +got):\n%s", diff)
		}
	})

	tests := []struct {
		name    string
		req     admissionv1.AdmissionRequest
		pod     *corev1.Pod
		allowed bool
		msg     string
	}{
		{name: "opted out", pod: withLabel(pod, inject.InjectKey, "false"), allowed: true},
		{name: "not a pod", req: admissionv1.AdmissionRequest{Kind: metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}}, pod: pod, allowed: true},
		{name: "bad annotation", pod: withAnnotation(pod, inject.ExcludeOutboundIPRanges, "nope"), msg: "excludeOutboundIPRanges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req.Kind.Kind == "" {
				tt.req.Kind = podKind
			}
			resp := post(t, srv, InjectPath, tt.req, tt.pod)
			if resp.Allowed != tt.allowed || (tt.allowed && resp.Patch != nil) {
				t.Fatalf("allowed %v, patch %s; want allowed %v and no patch", resp.Allowed, resp.Patch, tt.allowed)
			}
			if !tt.allowed && !strings.Contains(resp.Result.Message, tt.msg) {
				t.Errorf("message %q does not mention %q", resp.Result.Message, tt.msg)
			}
		})
	}
}

func withLabel(p *corev1.Pod, k, v string) *corev1.Pod {
	p = p.DeepCopy()
	p.Labels[k] = v
	return p
}

func withAnnotation(p *corev1.Pod, k, v string) *corev1.Pod {
	p = p.DeepCopy()
	p.Annotations = map[string]string{k: v}
	return p
}

func TestValidateWebhook(t *testing.T) {
	srv := newServer(t)
	vs := func(spec string) map[string]any {
		var s map[string]any
		if err := json.Unmarshal([]byte(spec), &s); err != nil {
			t.Fatal(err)
		}
		return map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{
				"name": "reviews", "namespace": "shop", "uid": "x", "resourceVersion": "1", "generation": 1,
				"creationTimestamp": "2026-01-01T00:00:00Z",
				"managedFields":     []any{map[string]any{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:spec": map[string]any{}}}},
			},
			"spec": s,
		}
	}
	vsKind := metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	tests := []struct {
		name    string
		op      admissionv1.Operation
		obj     any
		allowed bool
		msgs    []string
	}{
		{
			name:    "valid split",
			obj:     vs(`{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews","subset":"v1"},"weight":90},{"destination":{"host":"reviews","subset":"v2"},"weight":10}]}]}`),
			allowed: true,
		},
		{
			name: "weight 150",
			obj:  vs(`{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"},"weight":150}]}]}`),
			msgs: []string{"VirtualService shop/reviews is invalid", "spec.http[0].route[0].weight", "150"},
		},
		{
			name: "unknown field",
			obj:  vs(`{"hosts":["reviews"],"http":[{"rout":[]}]}`),
			msgs: []string{"spec.http[0].rout", "unknown field"},
		},
		{
			name: "bad duration",
			obj:  vs(`{"hosts":["reviews"],"http":[{"timeout":"soon","route":[{"destination":{"host":"reviews"}}]}]}`),
			msgs: []string{"spec.http[0].timeout"},
		},
		{name: "delete", op: admissionv1.Delete, obj: vs(`{"hosts":[]}`), allowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.op
			if op == "" {
				op = admissionv1.Create
			}
			resp := post(t, srv, ValidatePath, admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "reviews", Operation: op}, tt.obj)
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v (result %+v)", resp.Allowed, tt.allowed, resp.Result)
			}
			for _, m := range tt.msgs {
				if !strings.Contains(resp.Result.Message, m) {
					t.Errorf("message %q does not mention %q", resp.Result.Message, m)
				}
			}
		})
	}
}

func TestHandlerRejectsBadRequests(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{name: "not JSON", method: http.MethodPost, path: ValidatePath, body: "{", want: http.StatusBadRequest},
		{name: "no request", method: http.MethodPost, path: InjectPath, body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, want: http.StatusBadRequest},
		{name: "GET", method: http.MethodGet, path: InjectPath, want: http.StatusMethodNotAllowed},
		{name: "unknown path", method: http.MethodPost, path: "/mutate", body: "{}", want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

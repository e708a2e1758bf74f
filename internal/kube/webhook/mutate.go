package webhook

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/kube/inject"
)

// injectPod answers a pod CREATE with the JSON patch that injects it.
func injectPod(req *admissionv1.AdmissionRequest, cfg inject.Config) *admissionv1.AdmissionResponse {
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return allow()
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, metav1.StatusReasonBadRequest, "decoding pod: "+err.Error())
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace // a pod being created may not carry it yet
	}
	injected, err := inject.Pod(&pod, cfg)
	if err != nil {
		return deny(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
	}
	if injected == &pod {
		return allow()
	}
	patch, err := podPatch(&pod, injected)
	if err != nil {
		return deny(http.StatusInternalServerError, metav1.StatusReasonInternalError, "building patch: "+err.Error())
	}
	return &admissionv1.AdmissionResponse{
		Allowed:   true,
		Patch:     patch,
		PatchType: ptrTo(admissionv1.PatchTypeJSONPatch),
	}
}

func ptrTo[T any](v T) *T { return &v }

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// podPatch is the JSON patch from pod to injected. It compares the two, both as Go
// encodes them (so that fields spelt differently but equal are equal), member by member
// under metadata and spec, and sets ("add" replaces an existing member) or removes each
// member that differs: the patch is right whatever the mutation touched.
func podPatch(pod, injected *corev1.Pod) ([]byte, error) {
	before, err := toMap(pod)
	if err != nil {
		return nil, err
	}
	after, err := toMap(injected)
	if err != nil {
		return nil, err
	}
	ops := []patchOp{}
	for _, section := range []string{"metadata", "spec"} {
		b, _ := before[section].(map[string]any)
		a, _ := after[section].(map[string]any)
		ops = append(ops, diffFields("/"+section, b, a)...)
	}
	return json.Marshal(ops)
}

func toMap(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

// diffFields is the operations turning the object before into after, one per member.
func diffFields(prefix string, before, after map[string]any) []patchOp {
	var ops []patchOp
	for _, k := range sortedKeys(after) {
		if b, ok := before[k]; !ok || !jsonEqual(b, after[k]) {
			ops = append(ops, patchOp{Op: "add", Path: prefix + "/" + escape(k), Value: after[k]})
		}
	}
	for _, k := range sortedKeys(before) {
		if _, ok := after[k]; !ok {
			ops = append(ops, patchOp{Op: "remove", Path: prefix + "/" + escape(k)})
		}
	}
	return ops
}

// escape spells a member name as a JSON pointer token (RFC 6901).
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

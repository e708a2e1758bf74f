// Package webhook serves the Kubernetes admission webhooks of the control plane: plain
// net/http handlers for admission.k8s.io/v1 AdmissionReview requests.
//
//   - /inject (mutating): for a Pod, inject.Pod adds the sidecar and the interception
//     init step; the response is a JSON patch from the pod the API server sent to the
//     injected one. A pod that is not to be injected (already injected, opted out,
//     host network) is allowed unchanged; one whose traffic annotations are malformed
//     is refused with a message naming the annotation.
//   - /validate (validating): the object (an Istio, Gateway API or Trellis kind) is
//     decoded strictly by internal/config, exactly as a mesh file would be, and
//     refused with every problem, each naming its field (spec.http[0].route[0].weight:
//     weight 150 is out of range 0..100). Deletions are always allowed.
//
// Handler returns both on one http.Handler; serving it over TLS (port 15017, with a
// certificate the control plane issues) is the caller's job. The handlers keep no
// state: each request is independent and they are safe for concurrent use.
package webhook

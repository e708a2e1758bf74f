// Package check is what `trellis check` and `trellis analyze --kubeconfig` do against
// a cluster.
//
// Pre checks the prerequisites of an install: the API server answers, its version
// is one Trellis supports (MinVersion: native sidecars), the caller may create what
// install creates (one SelfSubjectAccessReview per resource) and the admission
// chain answers (the admissionregistration.k8s.io/v1 API is served and a dry-run
// create goes through admission). Post checks an installed mesh: every CRD of
// install.Kinds is Established, the control plane Deployment is Available (or, when
// the webhooks call a control plane outside the cluster, its monitoring /ready
// answers), every webhook has a caBundle, and it lists the namespaces labelled for
// injection. Installed says which of the two applies.
//
// MeshObjects lists the Services and the custom resources of install.Kinds (with the
// dynamic client) and decodes each with internal/config, as the Kubernetes source and
// the validating webhook do, so internal/analyze can report on them.
//
// Everything here is a sequence of requests made by the caller's goroutine.
package check

// Package install builds and applies the objects that put Trellis into a Kubernetes
// cluster: what `trellis install` applies or prints, `trellis uninstall` removes, and
// the Helm chart under deploy/helm/trellis renders (a test compares the two object by
// object).
//
// # Objects
//
// Objects(Config) returns, in apply order:
//
//   - a CustomResourceDefinition for every kind Trellis reads (Kinds): the Istio
//     networking kinds (v1, v1beta1, v1alpha3 served, v1 stored), the Istio security
//     kinds (v1, v1beta1), the Gateway API HTTPRoute and GRPCRoute, and the trellis.dev
//     kinds. Their schemas are open (x-kubernetes-preserve-unknown-fields): nothing is
//     copied from upstream, and unknown fields reach the validating webhook, which
//     decodes every object strictly with the upstream Go types (internal/config) and
//     refuses what they do not accept, naming the field. A structural schema would
//     instead prune unknown fields silently;
//   - the namespace (default trellis-system), the ServiceAccount, a ClusterRole and
//     binding (read service discovery and the config kinds, write their status, create
//     TokenReviews, update the two webhook configurations) and a Role and binding in
//     the namespace (Leases, Secrets, ConfigMaps, events);
//   - the Service: xDS 15012, webhooks 443 -> 15017, monitoring 15014;
//   - unless Config.ControlPlaneURL is set, the control plane Deployment (2 replicas,
//     readiness and liveness probes on the monitoring port, resource requests,
//     non-root, read-only root file system) and a PodDisruptionBudget (minAvailable 1);
//   - with Config.RateLimit, the rate-limit service: Deployment trellis-ratelimit (2
//     replicas of `trellis ratelimit` counting in Redis at Config.RedisAddr, failing
//     open, watching RateLimitPolicies as the ServiceAccount trellis-ratelimit, which
//     a ClusterRole and binding allow get/list/watch on ratelimitpolicies.trellis.dev
//     and nothing else) and Service trellis-ratelimit (grpc 8081); the control
//     plane Deployment then gets --ratelimit-addr=trellis-ratelimit.<ns>.svc:8081;
//   - the MutatingWebhookConfiguration trellis-sidecar-injector (pods created in
//     namespaces labelled trellis-injection=enabled, except those labelled
//     sidecar.trellis.dev/inject: "false"; fails closed) and the
//     ValidatingWebhookConfiguration trellis-validator (create and update of every kind
//     above; fails open until it has a caBundle). They call the Service, or
//     ControlPlaneURL when it is set.
//
// Every object carries app.kubernetes.io/managed-by=trellis. YAML prints them.
//
// # Applying and removing
//
// Client.Apply server-side applies the objects (field manager trellis-install,
// forced), waiting for the CRDs to be established before the rest; a CRD that exists
// without the managed-by label (the Gateway API's own, an Istio installation's) is
// Kept, not taken over. Client.Uninstall deletes in reverse order, only objects that
// carry the label, and does not wait for namespaces and CRDs to finish going. Both
// return one Result per object.
//
// Nothing here is concurrent; a Client may be used from one goroutine at a time.
package install

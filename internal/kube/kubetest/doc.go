// Package kubetest starts a real Kubernetes API server for tests: etcd and
// kube-apiserver, built from their Go modules by hack/k8s-tools.sh, on 127.0.0.1 with
// random ports and a temporary directory, torn down when the test ends.
//
// Start generates a small PKI in the test's temporary directory (a CA, the API
// server's serving certificate for 127.0.0.1, an admin client certificate in the
// system:masters group and a service-account signing key), starts etcd, starts
// kube-apiserver with RBAC authorization and the admission webhooks enabled, and waits
// for /readyz. There is no kubelet, scheduler or controller manager: nothing runs pods,
// no controller creates a namespace's "default" ServiceAccount (CreateNamespace does)
// and a deleted namespace stays Terminating. Admission webhooks work: the API server
// calls webhook servers on loopback (clientConfig.url), which is how the webhook and
// install tests use it.
//
// The binaries are looked up in $TRELLIS_K8S_BIN, else
// $HOME/.cache/trellis/k8s/v1.37.2; when they are missing the test fails with a
// message saying to run hack/k8s-tools.sh.
//
// Each Start runs two processes owned by the test: t.Cleanup stops them (SIGTERM, then
// SIGKILL after a grace period), and they are killed if the test binary dies. Starting
// takes several seconds of CPU, so a package shares one Cluster between its subtests.
package kubetest

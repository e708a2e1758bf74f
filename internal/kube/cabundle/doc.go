// Package cabundle keeps the caBundle of the control plane's webhook configurations
// current: the API server verifies the webhook server's certificate (issued by the
// control plane's CA) with it.
//
// Keeper.Run, run by the leader, compares every webhook's clientConfig.caBundle of
// the MutatingWebhookConfiguration and ValidatingWebhookConfiguration it is given with
// the CA's trust bundle, at start, every Interval, and when Trigger is called (after a
// root rotation), and updates the configurations that differ. Once a validating
// webhook has the bundle its failurePolicy becomes Fail: the validator fails open only
// while the API server cannot reach it. A configuration that does not exist yet is
// skipped until the next check. Updates carry the resourceVersion read, so a
// concurrent change is retried at the next check rather than overwritten.
//
// With Config.RootCert, it also keeps a ConfigMap (trellis-ca-root-cert, key
// root-cert.pem) holding the trust bundle in every namespace labelled for injection,
// created when missing and updated when it differs; injected sidecars mount it to
// verify the control plane's xDS certificate. A namespace informer (label-filtered)
// triggers a check when such a namespace appears or is labelled, so its pods do not
// wait for the next interval.
//
// Concurrency: Run is one goroutine, plus the namespace informer's while it runs;
// Trigger may be called from any goroutine.
package cabundle

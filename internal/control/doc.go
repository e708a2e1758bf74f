// Package control is the control plane component that `trellis control` runs: it
// watches the mesh files, keeps the typed configuration and the registered sidecars,
// translates both into each proxy's xDS resources and serves them.
//
// Data flow (DESIGN.md §2):
//
//	file source ──> store ──┐
//	                        ├─(debounce)─> model.Build ─> xdsgen (scoped part per scope, ─> xdsserver.PushProxies ─> ADS
//	xDS streams ─> registry ┘                          own part per changed proxy;
//	                                                   GenerateGRPC per proxyless node)
//
// A change to the store (a file edited) or to the registry (a sidecar connected or
// gone) schedules one translation after DebounceAfter of quiet, and at most about a
// second after the first change of a burst, so that a burst of edits or a mesh
// starting up costs one translation. Translation rebuilds the whole model, generates
// the resources proxies share once per scope (namespace, Sidecar and the settings in
// xdsgen.Scopes.Key: translate.go, generation) and a proxy's own resources only when
// their inputs changed (own.go, ownCache, kept by the translator's goroutine between
// translations); xdsserver stores what proxies share once and sets a new snapshot only
// for the nodes whose resources changed, and Delta clients receive only the resources
// that changed (docs/control-plane.md, "Scoping" and "Pushes").
//
// Problems (conflicting definitions across files, conflicting port declarations,
// upstreams naming unknown services) are logged once each at Warn when they appear,
// and listed under /debug/config while they last. Invalid files are logged by the
// file source, and the last good version of each file stays in force.
//
// Security (security.go): Run loads or creates the CA in the data directory (or uses
// a user-supplied intermediate), writes the join token and the trust bundle there
// (JoinTokenFile, TrustBundleFile), and serves xDS and the CA service
// (IstioCertificateService) on the plaintext listener and, with a serving certificate
// from the CA (renewed at half life and after a rotation), on the TLS listener. Every
// proxy that announces mutual TLS receives the trust bundle as the SDS secret ROOTCA;
// a root rotation (POST /ca/rotate, /ca/retire-old-roots on the monitoring listener,
// loopback callers only) rewrites the bundle file and triggers a translation, which
// re-pushes ROOTCA.
//
// The monitoring server serves /metrics (the component's own Prometheus registry),
// /ready (200 once the files are loaded and translated once), /debug/config (the
// model, the proxies and the current problems as JSON) and /debug/xds (each proxy's
// generated resources; ?node=ID for one).
//
// The dashboard (internal/dashboard), when DashboardAddr (or DashboardListener) is
// set, reads the registry for the sidecars to scrape at their announced metrics
// addresses and, with DashboardTap (local mode), to tap at their admin addresses.
//
// Kubernetes (kube.go): with Config.Kubernetes set, Run also reads the API server
// (internal/source/kube feeds the store as the source "kubernetes" and gives the
// translator the Services' EndpointSlice endpoints, passed to model.Build with
// model.WithEndpoints). Before the CA exists it starts campaigning for the Lease
// (internal/kube/leader); the CA is loaded from the Secret trellis-ca
// (internal/kube/casecret), which the leader creates and the other replicas wait for;
// certificate requests are authenticated by TokenReview (internal/kube/tokenauth)
// instead of the join token. Every replica serves the admission webhooks
// (internal/kube/webhook) over TLS with the same serving certificate as the TLS xDS
// listener (it carries the control plane Service's DNS names), and polls the Secret to
// reload a rotation made by another replica. While it leads, a replica keeps the
// webhook configurations' caBundle current (internal/kube/cabundle), and again after
// every change of the trust bundle, and writes the Gateway API routes' status
// (internal/kube/routestatus, from model.RouteStatuses over the latest translation
// of the store's current version). Leader election runs on its own context, from
// before the CA is loaded until Run returns, and releases the Lease on the way out.
//
// Concurrency: Run owns one goroutine per part (file source, the wait for every source
// to sync, plaintext and TLS xDS servers, monitoring server, translator, dashboard; in
// Kubernetes mode also the Kubernetes source, the webhook server and the CA Secret
// watch, and leader election, which runs the leader's duties in its own goroutine)
// and returns when all have stopped after ctx ends. Only the translator writes the
// published state; handlers read it through an atomic pointer.
package control

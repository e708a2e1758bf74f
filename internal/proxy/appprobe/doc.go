// Package appprobe answers, on the sidecar's metrics port, the app containers' HTTP
// probes that the injector rewrote (bootstrap.AppProbe): the kubelet asks the sidecar
// at /app-health/<container>/<livez|readyz|startupz>, and the sidecar sends the
// original request to the app on loopback and answers with the app's status code.
// The kubelet's probes thus work whatever the pod's mutual TLS mode: the metrics port
// is not redirected to the sidecar's inbound listeners.
//
// Concurrency: the handler is safe for concurrent use; each probe is one request on a
// connection of its own (no keep-alive), bounded by the probe's timeout.
package appprobe

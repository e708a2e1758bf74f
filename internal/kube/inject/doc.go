// Package inject adds the Trellis sidecar to a pod: what the mutating admission
// webhook (internal/kube/webhook) does to every pod created in a namespace labelled
// trellis-injection=enabled, and what `trellis inject -f FILE` does offline to the pod
// templates of a manifest.
//
// Pod (and PodSpec, for templates) prepends two init containers to the pod:
//
//  1. trellis-init runs `trellis iptables` as root with NET_ADMIN and NET_RAW: it
//     redirects the pod's inbound TCP to the proxy's port 15006 and outbound TCP to
//     15001, leaving the proxy's own traffic (UID 1337) and the health port 15020
//     alone. Annotations on the pod include or exclude ports and CIDRs
//     (traffic.sidecar.trellis.dev/excludeInboundPorts, includeInboundPorts,
//     excludeOutboundPorts, excludeOutboundIPRanges, includeOutboundIPRanges).
//  2. trellis-proxy is the proxy, as a native sidecar: an init container with
//     restartPolicy Always, so it starts before the app containers (its startup probe
//     on /healthz/ready:15020 holds them back until it is ready) and stops after them.
//     It runs as UID 1337, learns its pod from the downward API (POD_NAME,
//     POD_NAMESPACE, SERVICE_ACCOUNT, POD_IP) and its labels from TRELLIS_LABELS (the
//     pod's labels at injection, JSON: workload selectors match them), and
//     authenticates to the control plane's CA with a projected service-account token
//     for the audience trellis-ca.
//
// Both come before the pod's own init containers, whose traffic is then intercepted
// too. The pod gets the annotation sidecar.trellis.dev/status=injected; a pod that has
// it (or a trellis-proxy container), that opts out (label or annotation
// sidecar.trellis.dev/inject: "false") or that uses the host's network is returned
// unchanged, so injecting twice is injecting once.
//
// Everything here is a pure function of its inputs; nothing is concurrent.
package inject

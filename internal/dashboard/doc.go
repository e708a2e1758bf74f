// Package dashboard is the control plane's dashboard: it scrapes every connected
// sidecar's Prometheus metrics, keeps the last minutes of them in memory, fans in
// the sidecars' live request taps, and serves a web UI (internal/dashboard/web) and
// the JSON API that the UI and `trellis stat`, `top` and `tap` read (Client).
//
// Data flow:
//
//	registry (Sidecars) ─> scrapeLoop: every ScrapeInterval, GET <metadata.metrics>/stats/prometheus
//	    of every sidecar (8 at a time) ─> parseMetrics: trellis_requests_total and
//	    trellis_request_duration_milliseconds (or the istio_* names) folded into
//	    counts per seriesKey (reporter, caller, service, callee, protocol)
//	─> history.add: the increase since the sidecar's previous scrape (a counter that
//	    went down means a restart: the new value is the increase; a sidecar's first
//	    scrape counts whole, except in the dashboard's first round, a baseline),
//	    summed over sidecars into one round
//	─> rounds of the last Retention ─> per request: the rounds of the window summed,
//	    flows() picks for each (caller, service, callee) what the caller's sidecar
//	    reported (reporter=source), else the callee's, as Kiali does
//	─> graph / services / workloads: RPS, success rate (non-5xx), p50/p90/p99 by
//	    linear interpolation in the histogram buckets (histogram_quantile).
//
//	tap clients (/api/tap) ─> tapHub: while one is connected (and 30s after), one
//	    reader per sidecar streams GET <metadata.admin>/tap (JSON lines) ─> a ring of
//	    the last TapBacklog events and every client's buffered channel (a slow client
//	    misses events, never blocks the others).
//
// Memory is bounded: Retention/ScrapeInterval rounds of at most MaxSeries series,
// the last snapshot of each sidecar, and the tap ring.
//
// Concurrency: Serve owns the scrape loop, the tap hub's loop (which owns one
// reader goroutine per tapped sidecar) and the HTTP server, and returns when all
// have stopped after its context ends. history has its own RWMutex; rounds are
// immutable once added, so readers share them. tapHub.mu guards the ring, the
// clients and the readers; Dashboard.mu the scrape status of each sidecar.
package dashboard

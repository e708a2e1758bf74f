package dashboard

import "time"

// The JSON API's types (docs/dashboard.md). The web UI and `trellis stat/top/tap`
// read them.

// Stats are the golden signals of some traffic over a window.
type Stats struct {
	// Requests is how many requests the window saw; RPS the rate.
	Requests float64 `json:"requests"`
	RPS      float64 `json:"rps"`
	// SuccessRate is the share (0 to 1) of requests not answered with a 5xx; null
	// without requests.
	SuccessRate *float64 `json:"successRate"`
	// P50, P90 and P99 are latency percentiles in milliseconds, estimated from the
	// histogram buckets; null without requests.
	P50 *float64 `json:"p50Ms"`
	P90 *float64 `json:"p90Ms"`
	P99 *float64 `json:"p99Ms"`
}

// Node kinds.
const (
	KindWorkload = "workload"
	KindService  = "service"
)

// Node is a workload or a service of the service graph.
type Node struct {
	// ID is "workload/<namespace>/<name>" or "service/<fqdn>".
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// App and Version are a workload's labels.
	App     string `json:"app,omitempty"`
	Version string `json:"version,omitempty"`
	// Sidecar says whether a workload's sidecar is connected to the control plane.
	Sidecar bool `json:"sidecar,omitempty"`
	// Stats is the traffic the node received.
	Stats
}

// Edge is traffic from a workload to a service, or from a service to the workload
// that served it.
type Edge struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Protocol is http, grpc, or mixed.
	Protocol string `json:"protocol,omitempty"`
	// Declared is true for a service-to-workload edge that has no traffic in the
	// window: the workload's sidecar declares the service.
	Declared bool `json:"declared,omitempty"`
	Stats
}

// Graph is the service graph over a window.
type Graph struct {
	Window      string    `json:"window"`
	GeneratedAt time.Time `json:"generatedAt"`
	Nodes       []Node    `json:"nodes"`
	Edges       []Edge    `json:"edges"`
}

// Point is one scrape round of a service's traffic, for charts.
type Point struct {
	T           time.Time `json:"t"`
	RPS         float64   `json:"rps"`
	SuccessRate *float64  `json:"successRate"`
	P50         *float64  `json:"p50Ms"`
	P99         *float64  `json:"p99Ms"`
}

// ServiceStats is the traffic a service received.
type ServiceStats struct {
	FQDN      string `json:"fqdn"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Stats
	// Workloads are the workloads that served it, or declare it.
	Workloads []string `json:"workloads"`
	// History is one point per scrape round over the history asked for.
	History []Point `json:"history,omitempty"`
}

// WorkloadStats is the traffic a workload received (Inbound) and sent (Outbound).
type WorkloadStats struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Sidecar   bool   `json:"sidecar"`
	Inbound   Stats  `json:"inbound"`
	Outbound  Stats  `json:"outbound"`
}

// ServicesResponse is GET /api/services.
type ServicesResponse struct {
	Window   string         `json:"window"`
	Services []ServiceStats `json:"services"`
}

// WorkloadsResponse is GET /api/workloads.
type WorkloadsResponse struct {
	Window    string          `json:"window"`
	Workloads []WorkloadStats `json:"workloads"`
}

// Sidecar is a connected sidecar as the dashboard sees it.
type Sidecar struct {
	Node string `json:"node"`
	// Metrics is the address scraped; empty when the sidecar announces none.
	Metrics    string    `json:"metrics"`
	LastScrape time.Time `json:"lastScrape,omitzero"`
	Error      string    `json:"error,omitempty"`
	// Admin is the address tapped, when tapping is on; Tapping whether a tap
	// stream is open.
	Admin   string `json:"admin,omitempty"`
	Tapping bool   `json:"tapping"`
}

// SidecarsResponse is GET /api/sidecars.
type SidecarsResponse struct {
	ScrapeInterval string    `json:"scrapeInterval"`
	TapEnabled     bool      `json:"tapEnabled"`
	Sidecars       []Sidecar `json:"sidecars"`
}

// TapEvent is one request from the tap stream (GET /api/tap): the reporting
// sidecar's access log record (docs/telemetry.md), its node ID, and the
// destination service.
type TapEvent struct {
	// Node is the reporting sidecar (<workload>.<namespace>).
	Node string `json:"node"`
	// Service is the destination service's FQDN, when known.
	Service string `json:"service,omitempty"`
	TapLine
}

// TapLine is a sidecar's access log line, as its /tap streams it.
type TapLine struct {
	Time            string   `json:"time"`
	TraceID         string   `json:"trace_id"`
	Method          string   `json:"method"`
	Authority       string   `json:"authority"`
	Path            string   `json:"path"`
	Protocol        string   `json:"protocol"`
	ResponseCode    int      `json:"response_code"`
	GRPCStatus      *int     `json:"grpc_status,omitempty"`
	ResponseFlags   string   `json:"response_flags"`
	DurationMS      float64  `json:"duration_ms"`
	BytesSent       int64    `json:"bytes_sent"`
	BytesReceived   int64    `json:"bytes_received"`
	UpstreamCluster string   `json:"upstream_cluster"`
	UpstreamHost    string   `json:"upstream_host"`
	Source          TapParty `json:"source"`
	Destination     TapParty `json:"destination"`
	Reporter        string   `json:"reporter"`
}

// TapParty is one side of a tapped request.
type TapParty struct {
	Workload  string `json:"workload"`
	Namespace string `json:"namespace"`
	Principal string `json:"principal"`
}

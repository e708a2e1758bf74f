package runtime

import (
	"time"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// Cluster is a set of endpoints and how to reach and balance them. Its fields are
// configuration; the live state (endpoints' load and health, circuit breaker counters,
// connection pools) belongs to the request path, which attaches it in Upstream.
type Cluster struct {
	Name           string
	ConnectTimeout time.Duration
	// HTTP2 is true when the upstream speaks HTTP/2 with prior knowledge (h2c).
	HTTP2 bool
	// Endpoints are the endpoint addresses (host:port), in the order received. For a
	// DNS cluster they are the host names to resolve, with their ports.
	Endpoints []string
	// Peers are the workloads behind the endpoints, by address, from the EDS
	// endpoints' metadata (filter_metadata "trellis"), for telemetry; nil when none
	// has any.
	Peers map[string]*reqinfo.Peer
	// OriginalDst is set for ORIGINAL_DST clusters (PassthroughCluster): a connection
	// goes to its own original destination (OriginalDstFrom), and Endpoints is empty.
	OriginalDst bool
	// DNS is set for STRICT_DNS clusters: Endpoints are resolved every DNSRefreshRate.
	DNS            bool
	DNSRefreshRate time.Duration
	// LB is the load balancing policy.
	LB LBPolicy
	// Breakers are the circuit breaker thresholds.
	Breakers Thresholds
	// IdleTimeout closes pooled upstream connections idle for this long;
	// MaxRequestsPerConnection, when not zero, closes a connection after that many
	// requests.
	IdleTimeout              time.Duration
	MaxRequestsPerConnection uint32
	// Outlier is the outlier detection; nil when the cluster has none.
	Outlier *lb.OutlierConfig
	// PanicThreshold is the healthy_panic_threshold in percent.
	PanicThreshold float64
	// TLS secures the connections to the endpoints; nil: plaintext.
	TLS *UpstreamTLS
	// Upstream is attached by the request path (its live state for this cluster)
	// before the table is published; the runtime never reads it.
	Upstream any
}

// Defaults of the cluster fields the configuration may leave out (Envoy's).
const (
	DefaultDNSRefreshRate = 5 * time.Second
	DefaultIdleTimeout    = time.Hour
)

// LBKind is a load balancing policy.
type LBKind int

// The policies the sidecar implements.
const (
	RoundRobin LBKind = iota
	LeastRequest
	Random
	RingHash
)

func (k LBKind) String() string {
	return [...]string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH"}[k]
}

// LBPolicy is a cluster's load balancing policy and its settings.
type LBPolicy struct {
	Kind LBKind
	// ChoiceCount is how many endpoints LEAST_REQUEST compares.
	ChoiceCount int
	// MinRingSize is RING_HASH's ring size.
	MinRingSize int
}

// Thresholds are a cluster's circuit breakers (Envoy's defaults when absent: 1024
// connections, pending and active requests, 3 retries).
type Thresholds struct {
	MaxConnections     int64
	MaxPendingRequests int64
	MaxRequests        int64
	MaxRetries         int64
	// RetryBudget, when set, replaces MaxRetries: retries in flight may be at most
	// BudgetPercent of the requests in flight (active and pending), and at least
	// MinRetryConcurrency.
	RetryBudget *RetryBudget
}

// RetryBudget bounds retries to a share of the traffic.
type RetryBudget struct {
	BudgetPercent       float64
	MinRetryConcurrency int64
}

// DefaultThresholds are Envoy's default circuit breakers.
func DefaultThresholds() Thresholds {
	return Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}
}

// Defaults of a retry budget whose fields are absent (Envoy's).
const (
	DefaultBudgetPercent       = 20.0
	DefaultMinRetryConcurrency = 3
)

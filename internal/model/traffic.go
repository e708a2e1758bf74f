package model

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// This file holds the traffic-management part of the IR: the routes of a service
// port (from VirtualServices, HTTPRoutes and GRPCRoutes), its subsets and traffic
// policies (from DestinationRules). xdsgen turns them into Envoy routes and clusters.

// Duration is a time.Duration that reads as "1.5s" in JSON (mesh.json, /debug/config).
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Std is d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// ClusterRef names one outbound cluster: a service port, optionally one subset of it.
type ClusterRef struct {
	// Service is the FQDN of the service (or the host of a ServiceEntry).
	Service string `json:"service"`
	Port    uint32 `json:"port"`
	Subset  string `json:"subset,omitempty"`
}

// Name is the xDS cluster name: outbound|<port>|<subset>|<fqdn>.
func (r ClusterRef) Name() string {
	return "outbound|" + strconv.FormatUint(uint64(r.Port), 10) + "|" + r.Subset + "|" + r.Service
}

// MatchType says how a StringMatch compares.
type MatchType string

// The kinds of string match.
const (
	MatchExact   MatchType = "Exact"
	MatchPrefix  MatchType = "Prefix"
	MatchRegex   MatchType = "Regex"
	MatchPresent MatchType = "Present"
	// MatchPathPrefix is the Gateway API's segment-wise path prefix: "/foo" matches
	// "/foo" and "/foo/bar" but not "/foobar". Only for paths.
	MatchPathPrefix MatchType = "PathPrefix"
)

// StringMatch matches a string: exactly, by prefix, by RE2 regex (the whole string),
// or by being present at all (headers, query parameters).
type StringMatch struct {
	Type  MatchType `json:"type"`
	Value string    `json:"value,omitempty"`
}

// HeaderMatch matches one request header (":method" and ":authority" included).
type HeaderMatch struct {
	Name  string      `json:"name"`
	Match StringMatch `json:"match"`
	// Invert makes the header match when Match does not (VirtualService withoutHeaders).
	Invert bool `json:"invert,omitempty"`
}

// QueryMatch matches one query parameter.
type QueryMatch struct {
	Name  string      `json:"name"`
	Match StringMatch `json:"match"`
}

// Match is the condition of a route. Every set part must hold.
type Match struct {
	// Path is nil for any path.
	Path *StringMatch `json:"path,omitempty"`
	// IgnoreCase makes the path match case-insensitive.
	IgnoreCase  bool          `json:"ignoreCase,omitempty"`
	Headers     []HeaderMatch `json:"headers,omitempty"`
	QueryParams []QueryMatch  `json:"queryParams,omitempty"`
	// SourceLabels and SourceNamespace restrict the route to the proxies whose
	// workload has those labels or is in that namespace; they are applied when a
	// proxy's configuration is generated.
	SourceLabels    map[string]string `json:"sourceLabels,omitempty"`
	SourceNamespace string            `json:"sourceNamespace,omitempty"`
}

// Header is one header name and value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HeaderOps are header manipulations: Set overwrites (or adds), Add appends.
type HeaderOps struct {
	RequestSet     []Header `json:"requestSet,omitempty"`
	RequestAdd     []Header `json:"requestAdd,omitempty"`
	RequestRemove  []string `json:"requestRemove,omitempty"`
	ResponseSet    []Header `json:"responseSet,omitempty"`
	ResponseAdd    []Header `json:"responseAdd,omitempty"`
	ResponseRemove []string `json:"responseRemove,omitempty"`
}

// Empty reports whether h does nothing.
func (h *HeaderOps) Empty() bool {
	return h == nil || len(h.RequestSet)+len(h.RequestAdd)+len(h.RequestRemove)+
		len(h.ResponseSet)+len(h.ResponseAdd)+len(h.ResponseRemove) == 0
}

// Destination is one weighted backend of a route.
type Destination struct {
	Cluster ClusterRef `json:"cluster"`
	Weight  uint32     `json:"weight"`
	// Headers are applied only to requests sent to this destination.
	Headers *HeaderOps `json:"headers,omitempty"`
}

// Retry is a route's retry policy.
type Retry struct {
	// Attempts is the number of retries (not counting the first try).
	Attempts uint32 `json:"attempts"`
	// On are Envoy retry conditions (5xx, connect-failure, ...).
	On []string `json:"on"`
	// StatusCodes are retried when On holds retriable-status-codes.
	StatusCodes   []uint32  `json:"statusCodes,omitempty"`
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
	// Backoff is the base interval of the exponential backoff; 0: the default (25ms).
	Backoff *Duration `json:"backoff,omitempty"`
}

// Percent is a share of requests, 0..100.
type Percent float64

// Fault injects delays and aborts into a share of requests.
type Fault struct {
	Delay        *Duration `json:"delay,omitempty"`
	DelayPercent Percent   `json:"delayPercent,omitempty"`
	// AbortHTTPStatus or AbortGRPCStatus (a gRPC code number) is answered to
	// AbortPercent of the requests.
	AbortHTTPStatus uint32  `json:"abortHTTPStatus,omitempty"`
	AbortGRPCStatus *uint32 `json:"abortGRPCStatus,omitempty"`
	AbortPercent    Percent `json:"abortPercent,omitempty"`
}

// Mirror copies a share of requests to another cluster, fire and forget.
type Mirror struct {
	Cluster ClusterRef `json:"cluster"`
	Percent Percent    `json:"percent"`
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	// Prefix replaces the matched path prefix (or the whole matched path).
	Prefix string `json:"prefix,omitempty"`
	// Regex and Substitution rewrite the path by regex (RE2); Regex "" means none.
	Regex        string `json:"regex,omitempty"`
	Substitution string `json:"substitution,omitempty"`
	// Host replaces the Host (authority) header.
	Host string `json:"host,omitempty"`
}

// Redirect answers with a redirect instead of forwarding.
type Redirect struct {
	Scheme string `json:"scheme,omitempty"`
	Host   string `json:"host,omitempty"`
	Port   uint32 `json:"port,omitempty"`
	// Path replaces the whole path; PrefixRewrite only the matched prefix.
	Path          string `json:"path,omitempty"`
	PrefixRewrite string `json:"prefixRewrite,omitempty"`
	// Code is 301, 302, 303, 307 or 308.
	Code uint32 `json:"code"`
}

// DirectResponse answers with a fixed status and body.
type DirectResponse struct {
	Status uint32 `json:"status"`
	Body   string `json:"body,omitempty"`
}

// CORS is a route's CORS policy.
type CORS struct {
	AllowOrigins     []StringMatch `json:"allowOrigins,omitempty"`
	AllowMethods     []string      `json:"allowMethods,omitempty"`
	AllowHeaders     []string      `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string      `json:"exposeHeaders,omitempty"`
	MaxAge           *Duration     `json:"maxAge,omitempty"`
	AllowCredentials *bool         `json:"allowCredentials,omitempty"`
}

// Route is one HTTP route of a service port: a match and what to do with the
// requests it matches. A VirtualService http entry with several matches becomes one
// Route per match, in order.
type Route struct {
	// Name is the route's name in its document, if it has one.
	Name string `json:"name,omitempty"`
	// Source names the document and entry: "VirtualService default/reviews http[0]".
	Source string `json:"source"`
	Match  Match  `json:"match"`

	// Exactly one of Destinations, Redirect and DirectResponse is set.
	Destinations   []Destination   `json:"destinations,omitempty"`
	Redirect       *Redirect       `json:"redirect,omitempty"`
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`

	// Timeout bounds the whole request, retries included; nil: none.
	Timeout *Duration `json:"timeout,omitempty"`
	// Retry is nil for no retries.
	Retry   *Retry     `json:"retry,omitempty"`
	Fault   *Fault     `json:"fault,omitempty"`
	Mirrors []Mirror   `json:"mirrors,omitempty"`
	Headers *HeaderOps `json:"headers,omitempty"`
	Rewrite *Rewrite   `json:"rewrite,omitempty"`
	CORS    *CORS      `json:"cors,omitempty"`
	// Hash is the consistent-hash key of the destination's load balancer, if it
	// hashes.
	Hash *HashPolicy `json:"hash,omitempty"`
	// Consumer marks a Gateway API consumer route: see Port.RoutesFor.
	Consumer bool `json:"consumer,omitempty"`
	// ExportTo are the namespaces whose proxies the route applies to (the
	// VirtualService's exportTo); nil: all.
	ExportTo ExportTo `json:"exportTo,omitempty"`
}

// TCPRoute sends the connections of a TCP service port to weighted destinations.
type TCPRoute struct {
	Source          string            `json:"source"`
	SourceLabels    map[string]string `json:"sourceLabels,omitempty"`
	SourceNamespace string            `json:"sourceNamespace,omitempty"`
	Destinations    []Destination     `json:"destinations"`
	ExportTo        ExportTo          `json:"exportTo,omitempty"`
}

// LBPolicy is a cluster's load-balancing algorithm.
type LBPolicy string

// The load balancers.
const (
	LBRoundRobin   LBPolicy = "ROUND_ROBIN"
	LBLeastRequest LBPolicy = "LEAST_REQUEST"
	LBRandom       LBPolicy = "RANDOM"
	LBRingHash     LBPolicy = "RING_HASH"
)

// HashPolicy is what a consistent-hash load balancer hashes: one of a header, a
// cookie, the source IP or a query parameter.
type HashPolicy struct {
	Header     string    `json:"header,omitempty"`
	Cookie     string    `json:"cookie,omitempty"`
	CookiePath string    `json:"cookiePath,omitempty"`
	CookieTTL  *Duration `json:"cookieTTL,omitempty"`
	SourceIP   bool      `json:"sourceIP,omitempty"`
	QueryParam string    `json:"queryParam,omitempty"`
}

// LoadBalancer is a cluster's load-balancing settings.
type LoadBalancer struct {
	Policy LBPolicy `json:"policy"`
	// Hash and MinimumRingSize are for RING_HASH.
	Hash            *HashPolicy `json:"hash,omitempty"`
	MinimumRingSize uint64      `json:"minimumRingSize,omitempty"`
}

// ConnectionPool limits a cluster's connections and requests; 0 means unset.
type ConnectionPool struct {
	MaxConnections           uint32    `json:"maxConnections,omitempty"`
	ConnectTimeout           *Duration `json:"connectTimeout,omitempty"`
	TCPIdleTimeout           *Duration `json:"tcpIdleTimeout,omitempty"`
	MaxPendingRequests       uint32    `json:"maxPendingRequests,omitempty"`
	MaxRequests              uint32    `json:"maxRequests,omitempty"`
	MaxRequestsPerConnection uint32    `json:"maxRequestsPerConnection,omitempty"`
	MaxRetries               uint32    `json:"maxRetries,omitempty"`
	IdleTimeout              *Duration `json:"idleTimeout,omitempty"`
	// H2Upgrade is connectionPool.http.h2UpgradePolicy: true for UPGRADE, false for
	// DO_NOT_UPGRADE, nil for DEFAULT (the mesh's setting, Mesh.H2Upgrade).
	H2Upgrade *bool `json:"h2Upgrade,omitempty"`
}

// OutlierDetection ejects failing endpoints from a cluster for a while.
type OutlierDetection struct {
	Consecutive5xx            *uint32   `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayFailure *uint32   `json:"consecutiveGatewayFailure,omitempty"`
	Interval                  *Duration `json:"interval,omitempty"`
	BaseEjectionTime          *Duration `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent        uint32    `json:"maxEjectionPercent,omitempty"`
	MinHealthPercent          uint32    `json:"minHealthPercent"`
}

// RetryBudget bounds the retries in flight to a share of the requests in flight.
type RetryBudget struct {
	Percent        float64 `json:"percent"`
	MinConcurrency uint32  `json:"minConcurrency"`
}

// DefaultRetryBudget applies to every outbound cluster whose DestinationRule sets
// neither a retryBudget nor connectionPool.http.maxRetries: retries may add at most
// 20% to the requests in flight, and at least 3 retries may always be in flight, so
// that retries cannot turn a partial outage into a full one (Envoy's own defaults
// for retry_budget, and the share Linkerd's budgets use).
var DefaultRetryBudget = RetryBudget{Percent: 20, MinConcurrency: 3}

// TrafficPolicy is the policy of one cluster, merged from a DestinationRule's
// host-level, port-level and subset-level settings.
type TrafficPolicy struct {
	// Source names the DestinationRule: "DestinationRule default/reviews".
	Source           string            `json:"source"`
	LoadBalancer     *LoadBalancer     `json:"loadBalancer,omitempty"`
	ConnectionPool   *ConnectionPool   `json:"connectionPool,omitempty"`
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	RetryBudget      *RetryBudget      `json:"retryBudget,omitempty"`
	// TLS is the client TLS toward the cluster; nil: auto mTLS decides.
	TLS *ClientTLS `json:"tls,omitempty"`
}

// Subset is a named subset of a service port's endpoints, from a DestinationRule.
type Subset struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Policy *TrafficPolicy    `json:"policy,omitempty"`
	// Endpoints are those of the port whose labels match.
	Endpoints []Endpoint `json:"endpoints"`
}

// Subset returns the port's subset with the given name, or nil.
func (p *Port) Subset(name string) *Subset {
	for _, s := range p.Subsets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ClusterInfo is everything xdsgen needs to emit one outbound cluster.
type ClusterInfo struct {
	Ref       ClusterRef
	Service   *Service
	Port      *Port
	Policy    *TrafficPolicy
	Endpoints []Endpoint
	// TLS says how connections to the endpoints are secured; nil: plaintext.
	TLS *ClusterTLS
}

// ClusterFrom is Cluster as a proxy in namespace ns sees it: when the port's
// DestinationRule is not exported to ns, without the rule's traffic policies (a
// subset still selects its endpoints).
func (m *Mesh) ClusterFrom(ref ClusterRef, ns string) (ClusterInfo, error) {
	info, err := m.Cluster(ref)
	if err != nil || info.Port.RuleExportTo.Includes(ns) {
		return info, err
	}
	info.Policy = nil
	var ss *Subset
	if ref.Subset != "" {
		ss = info.Port.Subset(ref.Subset)
	}
	info.TLS = m.clusterTLS(info.Service, ss, nil, info.Endpoints)
	return info, nil
}

// Cluster resolves a cluster reference, or returns an error saying what is missing.
func (m *Mesh) Cluster(ref ClusterRef) (ClusterInfo, error) {
	svc := m.Service(ref.Service)
	if svc == nil {
		return ClusterInfo{}, fmt.Errorf("cluster %s: no service %s", ref.Name(), ref.Service)
	}
	port := svc.Port(ref.Port)
	if port == nil {
		return ClusterInfo{}, fmt.Errorf("cluster %s: service %s has no port %d", ref.Name(), ref.Service, ref.Port)
	}
	info := ClusterInfo{Ref: ref, Service: svc, Port: port, Policy: port.Policy, Endpoints: port.Endpoints}
	var ss *Subset
	if ref.Subset != "" {
		ss = port.Subset(ref.Subset)
		if ss == nil {
			return ClusterInfo{}, fmt.Errorf("cluster %s: service %s has no subset %q", ref.Name(), ref.Service, ref.Subset)
		}
		info.Policy, info.Endpoints = ss.Policy, ss.Endpoints
	}
	info.TLS = m.clusterTLS(svc, ss, info.Policy, info.Endpoints)
	return info, nil
}

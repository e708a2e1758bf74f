package runtime

import (
	"math/rand/v2"
	"regexp"
	"time"
)

// Route is one route: what it matches, and what it does with a matching request:
// exactly one of Action (forward to a cluster), Redirect or Direct (answer itself).
type Route struct {
	Name  string
	Match RouteMatch

	Action   *RouteAction
	Redirect *Redirect
	Direct   *DirectResponse

	// RequestHeaders and ResponseHeaders are the route's header changes.
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation
	// Fault is the fault injected into matching requests; nil for none.
	Fault *Fault
	// CORS is the route's CORS policy; nil for none.
	CORS *CORS
	// LocalRateLimit is the route's local rate limit; nil for none. RateLimits make
	// the descriptors sent to the rate-limit service (ratelimit.go).
	LocalRateLimit *LocalRateLimit
	RateLimits     []RateLimitPolicy
}

// RouteAction forwards a request to one of its clusters.
type RouteAction struct {
	// Clusters are the weighted clusters; a single cluster has weight 1.
	Clusters []WeightedCluster
	// Timeout bounds the whole exchange with the upstream, retries included; zero
	// means none.
	Timeout time.Duration
	// Retry is the retry policy; nil for no retries.
	Retry *RetryPolicy
	// Mirrors receive a copy of (a sample of) the requests.
	Mirrors []Mirror
	// PrefixRewrite replaces the matched prefix (or path) when HasPrefixRewrite.
	PrefixRewrite    string
	HasPrefixRewrite bool
	// RegexRewrite replaces every match of the pattern in the path with
	// RegexSubstitution (Go's $1 syntax; Envoy's \1 is translated).
	RegexRewrite      *regexp.Regexp
	RegexSubstitution string
	// HostRewrite replaces the Host header when not empty.
	HostRewrite string
	// HashPolicies give a request's hash key for consistent-hash clusters.
	HashPolicies []HashPolicy

	total uint64
}

// PickCluster draws one of the weighted clusters by weight.
func (a *RouteAction) PickCluster() *WeightedCluster {
	if len(a.Clusters) == 1 {
		return &a.Clusters[0]
	}
	return pickWeighted(a.Clusters, rand.Uint64N(a.total))
}

// WeightedCluster is one destination of a route, with its weight and its own header
// changes.
type WeightedCluster struct {
	Cluster         *Cluster
	Weight          uint32
	RequestHeaders  HeaderMutation
	ResponseHeaders HeaderMutation

	name string
}

func totalWeight(wcs []WeightedCluster) uint64 {
	var t uint64
	for _, wc := range wcs {
		t += uint64(wc.Weight)
	}
	return t
}

// pickWeighted returns the cluster whose weight range holds n, n in [0, total).
func pickWeighted(wcs []WeightedCluster, n uint64) *WeightedCluster {
	for i := range wcs {
		if w := uint64(wcs[i].Weight); n < w {
			return &wcs[i]
		} else {
			n -= w
		}
	}
	return &wcs[len(wcs)-1]
}

// RetryOn is a set of Envoy retry conditions.
type RetryOn uint32

// The retry conditions of retry_on.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryConnectFailure
	RetryReset
	RetryRetriable4xx
	RetryRefusedStream
	RetryStatusCodes
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

var retryOnNames = map[string]RetryOn{
	"5xx":                    Retry5xx,
	"gateway-error":          RetryGatewayError,
	"connect-failure":        RetryConnectFailure,
	"reset":                  RetryReset,
	"retriable-4xx":          RetryRetriable4xx,
	"refused-stream":         RetryRefusedStream,
	"retriable-status-codes": RetryStatusCodes,
	"cancelled":              RetryGRPCCancelled,
	"deadline-exceeded":      RetryGRPCDeadlineExceeded,
	"internal":               RetryGRPCInternal,
	"resource-exhausted":     RetryGRPCResourceExhausted,
	"unavailable":            RetryGRPCUnavailable,
}

// RetryPolicy is a route's retry policy, with Envoy's semantics.
type RetryPolicy struct {
	On RetryOn
	// NumRetries is the number of retries after the first attempt.
	NumRetries uint32
	// PerTryTimeout bounds each attempt until its response headers; zero means only
	// the route's timeout applies.
	PerTryTimeout time.Duration
	// RetriableStatusCodes are retried under retriable-status-codes.
	RetriableStatusCodes []uint32
	// BaseInterval and MaxInterval shape the backoff between attempts: a random wait
	// in [0, (2^k - 1) × BaseInterval) before retry k, capped at MaxInterval.
	BaseInterval time.Duration
	MaxInterval  time.Duration
}

// Retry policy defaults (Envoy's).
const (
	DefaultNumRetries   = 1
	DefaultBaseInterval = 25 * time.Millisecond
)

// RetriableStatus reports whether a response status (and, for gRPC, its grpc-status
// header; -1 when absent) is retriable under the policy.
func (p *RetryPolicy) RetriableStatus(status, grpcStatus int) bool {
	switch {
	case p.On&Retry5xx != 0 && status >= 500:
		return true
	case p.On&RetryGatewayError != 0 && (status == 502 || status == 503 || status == 504):
		return true
	case p.On&RetryRetriable4xx != 0 && status == 409:
		return true
	}
	if p.On&RetryStatusCodes != 0 {
		for _, c := range p.RetriableStatusCodes {
			if int(c) == status {
				return true
			}
		}
	}
	switch grpcStatus {
	case 1:
		return p.On&RetryGRPCCancelled != 0
	case 4:
		return p.On&RetryGRPCDeadlineExceeded != 0
	case 8:
		return p.On&RetryGRPCResourceExhausted != 0
	case 13:
		return p.On&RetryGRPCInternal != 0
	case 14:
		return p.On&RetryGRPCUnavailable != 0
	}
	return false
}

// Failure is a way an attempt can fail without a response.
type Failure int

// The failures retry_on distinguishes.
const (
	ConnectFailure Failure = iota + 1
	Reset
	RefusedStream
	PerTryTimeout
)

// RetriableFailure reports whether an attempt that failed without a response is
// retriable under the policy.
func (p *RetryPolicy) RetriableFailure(f Failure) bool {
	anyReset := p.On&(Retry5xx|RetryGatewayError|RetryReset) != 0
	switch f {
	case ConnectFailure:
		return anyReset || p.On&RetryConnectFailure != 0
	case RefusedStream:
		return anyReset || p.On&RetryRefusedStream != 0
	}
	return anyReset
}

// Backoff returns how long to wait before retry k (1 for the first retry); rnd is
// a random number in [0, 1).
func (p *RetryPolicy) Backoff(k int, rnd float64) time.Duration {
	upper := p.MaxInterval
	if k < 30 {
		upper = min(time.Duration((1<<k)-1)*p.BaseInterval, p.MaxInterval)
	}
	return time.Duration(rnd * float64(upper))
}

// Mirror sends a copy of a sample of the requests to Cluster.
type Mirror struct {
	Cluster  *Cluster
	Fraction Fraction

	name string
}

// Fraction is a share of requests, Numerator/Denominator.
type Fraction struct {
	Numerator   uint32
	Denominator uint32
}

// Sample draws whether this request is in the fraction.
func (f Fraction) Sample() bool {
	switch {
	case f.Numerator == 0:
		return false
	case f.Numerator >= f.Denominator:
		return true
	}
	return rand.Uint32N(f.Denominator) < f.Numerator
}

// HashKind is what a hash policy hashes.
type HashKind int

// The hash policies.
const (
	HashHeader HashKind = iota + 1
	HashCookie
	HashSourceIP
	HashQueryParameter
)

// HashPolicy gives a request's hash key: a header, a cookie, the client's IP address,
// or a query parameter.
type HashPolicy struct {
	Kind HashKind
	// Name is the header (canonical form), cookie or query parameter name.
	Name string
	// CookieTTL, when set, makes the sidecar generate the cookie when the request has
	// none, and set it on the response; CookiePath is its path.
	CookieTTL    time.Duration
	HasCookieTTL bool
	CookiePath   string
}

// Redirect answers with a redirect built from the request's URL.
type Redirect struct {
	Scheme string
	Host   string
	Port   uint32
	// Path replaces the path; PrefixRewrite, when HasPrefixRewrite, replaces the
	// matched prefix instead.
	Path             string
	PrefixRewrite    string
	HasPrefixRewrite bool
	// Code is the status: 301 (default), 302, 303, 307 or 308.
	Code int
}

// DirectResponse answers with a status and a body.
type DirectResponse struct {
	Status int
	Body   string
}

// HeaderMutation adds, sets and removes headers.
type HeaderMutation struct {
	Add    []HeaderValue
	Remove []string // canonical names
}

// Empty reports whether the mutation does nothing.
func (m *HeaderMutation) Empty() bool { return len(m.Add) == 0 && len(m.Remove) == 0 }

// HeaderValue is one header to add: appended to existing values, or replacing them
// when Overwrite.
type HeaderValue struct {
	Key       string // canonical form
	Value     string
	Overwrite bool
}

// Fault is the fault injected into a route's requests: a delay, then an abort, each
// for a sample of the requests.
type Fault struct {
	Delay         time.Duration
	DelayFraction Fraction
	// AbortStatus is the HTTP status to answer; AbortGRPC, when HasGRPCAbort, a gRPC
	// status answered as HTTP 200 with grpc-status.
	AbortStatus   int
	AbortGRPC     int
	HasGRPCAbort  bool
	AbortFraction Fraction
}

// HasAbort reports whether the fault aborts requests.
func (f *Fault) HasAbort() bool { return f.AbortStatus != 0 || f.HasGRPCAbort }

// CORS is a route's CORS policy.
type CORS struct {
	Origins          []StringMatcher
	AllowMethods     string
	AllowHeaders     string
	ExposeHeaders    string
	MaxAge           string
	AllowCredentials bool
}

// AllowOrigin reports whether origin is allowed.
func (c *CORS) AllowOrigin(origin string) bool {
	for i := range c.Origins {
		if c.Origins[i].Match(origin) {
			return true
		}
	}
	return false
}

package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// The headers of a rate-limited answer (docs/ratelimit.md, "Over the limit").
const (
	HeaderLimit      = "X-Ratelimit-Limit"
	HeaderRemaining  = "X-Ratelimit-Remaining"
	HeaderReset      = "X-Ratelimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// Config configures a Limiter.
type Config struct {
	// Logger receives the failures of the rate-limit service (once per outage).
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Limiter checks requests against their routes' rate limits. It is safe for
// concurrent use; Close releases its connections to rate-limit services.
type Limiter struct {
	log     *slog.Logger
	now     func() time.Time
	buckets *buckets

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by address
	down  atomic.Bool                 // the service failed its last call

	stats Stats
}

// Stats count the decisions, for the sidecar's metrics.
type Stats struct {
	LocalOverLimit, LocalShadow  atomic.Uint64
	GlobalOverLimit, GlobalError atomic.Uint64
	GlobalChecks                 atomic.Uint64
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	l := &Limiter{log: cfg.Logger, now: cfg.Now, buckets: newBuckets(), conns: map[string]*grpc.ClientConn{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Stats returns the Limiter's counters.
func (l *Limiter) Stats() *Stats { return &l.stats }

// Close closes the connections to rate-limit services.
func (l *Limiter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for addr, c := range l.conns {
		errs = append(errs, c.Close())
		delete(l.conns, addr)
	}
	return errors.Join(errs...)
}

// Header is one response header to add.
type Header struct{ Name, Value string }

// Decision is what the limits say about a request.
type Decision struct {
	// Refuse: answer 429 with Headers, and flag the request with Flag.
	Refuse bool
	// Flag is RL for a refusal over a limit, RLSE for a refusal because the service
	// failed (failure_mode_deny); 0 otherwise.
	Flag reqinfo.Flag
	// Headers are added to the answer, refused or not.
	Headers []Header
}

// Request is what Check looks at in a request.
type Request struct {
	HTTP *http.Request
	// Principal is the client's principal (a SPIFFE ID without "spiffe://"), "" when
	// the client is not authenticated.
	Principal string
}

// Check applies the route's local limit, then its global one (when the chain has the
// ratelimit filter).
func (l *Limiter) Check(ctx context.Context, chain *runtime.FilterChain, route *runtime.Route, req Request) Decision {
	var d Decision
	if lr := route.LocalRateLimit; lr != nil {
		d = l.checkLocal(lr, req)
		if d.Refuse {
			return d
		}
	}
	if len(route.RateLimits) > 0 && chain != nil && chain.RateLimit != nil {
		g := l.checkGlobal(ctx, chain, route.RateLimits, req)
		if g.Refuse {
			return g
		}
		d.Headers = append(d.Headers, g.Headers...)
	}
	return d
}

// limitState is the state of the most restrictive bucket seen.
type limitState struct {
	set       bool
	over      bool
	limit     uint32
	remaining uint32
	reset     time.Duration
}

func (s *limitState) consider(over bool, limit, remaining uint32, reset time.Duration) {
	switch {
	case !s.set, over && !s.over, over && s.over && reset > s.reset, !over && !s.over && remaining < s.remaining:
		*s = limitState{set: true, over: over, limit: limit, remaining: remaining, reset: reset}
	}
}

func (l *Limiter) checkLocal(lr *runtime.LocalRateLimit, req Request) Decision {
	if !lr.Enabled.Sample() {
		return Decision{}
	}
	now := l.now()
	var st limitState
	var buf [8]runtime.DescriptorEntry
	refuse := false
	for i := range lr.Policies {
		desc, ok := lr.Policies[i].AppendDescriptor(buf[:0], req.HTTP, req.Principal)
		if !ok {
			continue
		}
		for j := range lr.Descriptors {
			ld := &lr.Descriptors[j]
			if !ld.Matches(desc) {
				continue
			}
			var b *bucket
			if ld.Wildcard {
				var kb [256]byte
				b = l.buckets.getDynamic(ld.Key, appendDynamicKey(kb[:0], ld, desc), ld.Bucket, lr.MaxDynamic, now)
			} else {
				b = l.buckets.get(ld.Key, ld.Bucket, now)
			}
			ok, remaining, reset := b.take(now)
			if ld.Shadow {
				if !ok {
					l.stats.LocalShadow.Add(1)
				}
				continue
			}
			st.consider(!ok, ld.Bucket.MaxTokens, remaining, reset)
			refuse = refuse || !ok
		}
	}
	var d Decision
	if refuse {
		l.stats.LocalOverLimit.Add(1)
		if lr.Enforced.Sample() {
			d.Refuse, d.Flag = true, reqinfo.RateLimited
		}
	}
	if st.set && lr.Headers {
		resetSecs := strconv.FormatInt(int64(math.Ceil(st.reset.Seconds())), 10)
		d.Headers = append(d.Headers,
			Header{HeaderLimit, strconv.FormatUint(uint64(st.limit), 10)},
			Header{HeaderRemaining, strconv.FormatUint(uint64(st.remaining), 10)},
			Header{HeaderReset, resetSecs})
		if d.Refuse && lr.RetryAfter {
			d.Headers = append(d.Headers, Header{HeaderRetryAfter, resetSecs})
		}
	}
	return d
}

// appendDynamicKey appends the bucket key of a wildcard descriptor and the request's
// values to b.
func appendDynamicKey(b []byte, ld *runtime.LocalDescriptor, desc []runtime.DescriptorEntry) []byte {
	b = append(b, ld.Key...)
	for _, e := range desc {
		b = append(b, 0)
		b = strconv.AppendInt(b, int64(len(e.Value)), 10)
		b = append(b, ':')
		b = append(b, e.Value...)
	}
	return b
}

// checkGlobal asks the chain's rate-limit service about the request's descriptors.
func (l *Limiter) checkGlobal(ctx context.Context, chain *runtime.FilterChain, policies []runtime.RateLimitPolicy, req Request) Decision {
	g := chain.RateLimit
	rreq := &rlsv3.RateLimitRequest{Domain: g.Domain}
	var buf [8]runtime.DescriptorEntry
	for i := range policies {
		desc, ok := policies[i].AppendDescriptor(buf[:0], req.HTTP, req.Principal)
		if !ok || sent(rreq.Descriptors, desc) {
			continue
		}
		d := &commonrlv3.RateLimitDescriptor{Entries: make([]*commonrlv3.RateLimitDescriptor_Entry, len(desc))}
		for j, e := range desc {
			d.Entries[j] = &commonrlv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value}
		}
		rreq.Descriptors = append(rreq.Descriptors, d)
	}
	if len(rreq.Descriptors) == 0 {
		return Decision{}
	}
	l.stats.GlobalChecks.Add(1)
	resp, err := l.call(ctx, chain, rreq)
	if err != nil {
		l.stats.GlobalError.Add(1)
		if l.down.CompareAndSwap(false, true) {
			l.log.Warn("rate-limit service failed; requests go through unchecked unless failure_mode_deny", "cluster", g.Cluster,
				"failureModeDeny", g.FailureModeDeny, "error", err)
		}
		if g.FailureModeDeny {
			return Decision{Refuse: true, Flag: reqinfo.RateLimitServiceError}
		}
		return Decision{}
	}
	if l.down.CompareAndSwap(true, false) {
		l.log.Info("rate-limit service answers again", "cluster", g.Cluster)
	}
	var d Decision
	for _, h := range resp.GetResponseHeadersToAdd() {
		d.Headers = append(d.Headers, Header{h.GetKey(), h.GetValue()})
	}
	if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		l.stats.GlobalOverLimit.Add(1)
		d.Refuse, d.Flag = true, reqinfo.RateLimited
	}
	return d
}

// sent reports whether desc is already among ds.
func sent(ds []*commonrlv3.RateLimitDescriptor, desc []runtime.DescriptorEntry) bool {
	for _, d := range ds {
		if len(d.Entries) != len(desc) {
			continue
		}
		same := true
		for i, e := range d.Entries {
			if e.Key != desc[i].Key || e.Value != desc[i].Value {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

var errNoEndpoint = errors.New("the rate-limit cluster has no endpoint")

func (l *Limiter) call(ctx context.Context, chain *runtime.FilterChain, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	c := chain.RateLimitCluster
	if c == nil || len(c.Endpoints) == 0 {
		return nil, errNoEndpoint
	}
	addr := c.Endpoints[0]
	conn, err := l.conn(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, chain.RateLimit.Timeout)
	defer cancel()
	resp, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("asking the rate-limit service at %s: %w", addr, err)
	}
	return resp, nil
}

// conn returns the connection to addr, dialled once.
func (l *Limiter) conn(addr string) (*grpc.ClientConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connecting to the rate-limit service at %s: %w", addr, err)
	}
	l.conns[addr] = c
	return c, nil
}

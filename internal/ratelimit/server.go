package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/ratelimit/policy"
)

// Store counts hits in fixed windows, for every replica of the service that shares it.
type Store interface {
	// Increment adds hits to the counter named key and returns its new value. A counter
	// that does not exist starts at zero and is dropped ttl after it was created.
	Increment(ctx context.Context, key string, hits uint64, ttl time.Duration) (uint64, error)
}

// FailureMode is what the server answers when its store fails.
type FailureMode int

// The failure modes.
const (
	// FailOpen lets the request through (OK), counts an ERROR decision and logs the
	// outage once. The default: a broken store must not take the mesh down.
	FailOpen FailureMode = iota
	// FailClosed refuses the request (OVER_LIMIT), counts an ERROR decision and logs
	// the outage once.
	FailClosed
)

// ParseFailureMode reads "open" or "closed".
func ParseFailureMode(s string) (FailureMode, error) {
	switch s {
	case "open", "":
		return FailOpen, nil
	case "closed":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("unknown failure mode %q: use open or closed", s)
}

// String is "open" or "closed".
func (m FailureMode) String() string {
	if m == FailClosed {
		return "closed"
	}
	return "open"
}

// Config configures a Server.
type Config struct {
	// Store counts the hits. Required.
	Store Store
	// Domain is the RLS domain the server limits; requests for any other domain are
	// answered OK without a limit. Default policy.DefaultDomain.
	Domain string
	// FailureMode is what to answer when the store fails. Default FailOpen.
	FailureMode FailureMode
	// Logger receives store outages and recoveries. Nil discards.
	Logger *slog.Logger
	// Registry, if not nil, gets trellis_ratelimit_decisions_total.
	Registry prometheus.Registerer
	// Now is the clock; default time.Now. Tests move it to cross windows.
	Now func() time.Time
}

// Server answers envoy.service.ratelimit.v3.RateLimitService: ShouldRateLimit.
type Server struct {
	rlsv3.UnimplementedRateLimitServiceServer

	store   Store
	domain  string
	mode    FailureMode
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	table     atomic.Pointer[policy.Table]
	storeDown atomic.Bool // the store failed its last call; set and cleared with a log line
}

var _ rlsv3.RateLimitServiceServer = (*Server)(nil)

// New returns a Server with no policies: every descriptor is unknown until
// SetPolicies or SetTable.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("creating rate-limit server: no store")
	}
	s := &Server{
		store:  cfg.Store,
		domain: cfg.Domain,
		mode:   cfg.FailureMode,
		log:    cfg.Logger,
		now:    cfg.Now,
	}
	if s.domain == "" {
		s.domain = policy.DefaultDomain
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	m, err := newMetrics(cfg.Registry, s.domain)
	if err != nil {
		return nil, fmt.Errorf("creating rate-limit server: %w", err)
	}
	s.metrics = m
	empty, _ := policy.Compile(nil)
	s.table.Store(empty)
	return s, nil
}

// Register registers s as the RateLimitService of g.
func (s *Server) Register(g *grpc.Server) { rlsv3.RegisterRateLimitServiceServer(g, s) }

// SetPolicies compiles policies and makes them the server's; on error the previous ones
// stay.
func (s *Server) SetPolicies(policies []*v1alpha1.RateLimitPolicy) error {
	t, err := policy.Compile(policies)
	if err != nil {
		return fmt.Errorf("compiling rate-limit policies: %w", err)
	}
	s.SetTable(t)
	return nil
}

// SetTable makes t the server's rules. Requests in flight finish with the old ones.
func (s *Server) SetTable(t *policy.Table) { s.table.Store(t) }

// maxEntries is how many entries a descriptor is converted without allocating.
const maxEntries = 8

// ShouldRateLimit counts the request against the limit of each of its descriptors and
// answers OVER_LIMIT if any enforced limit is exceeded.
func (s *Server) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	if req.GetDomain() == "" {
		return nil, status.Error(codes.InvalidArgument, "rate limit request: domain is required")
	}
	if len(req.GetDescriptors()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "rate limit request: at least one descriptor is required")
	}
	known := req.GetDomain() == s.domain
	counters := s.metrics.forDomain(known)
	table := s.table.Load()
	now := s.now()

	resp := &rlsv3.RateLimitResponse{
		OverallCode: rlsv3.RateLimitResponse_OK,
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(req.Descriptors)),
	}
	var headerFrom decision // the enforced decision the headers describe, if rule is set
	var buf [maxEntries]policy.Entry
	for i, d := range req.Descriptors {
		var rule *policy.Rule
		if known {
			entries := buf[:0]
			for _, e := range d.GetEntries() {
				entries = append(entries, policy.Entry{Key: e.GetKey(), Value: e.GetValue()})
			}
			rule = table.Resolve(entries)
		}
		if rule == nil {
			resp.Statuses[i] = &rlsv3.RateLimitResponse_DescriptorStatus{Code: rlsv3.RateLimitResponse_OK}
			counters.ok.Inc()
			continue
		}
		hits := uint64(req.GetHitsAddend())
		if d.GetHitsAddend() != nil {
			hits = d.GetHitsAddend().GetValue()
		} else if hits == 0 {
			hits = 1
		}
		dec := s.decide(ctx, rule, d.GetEntries(), hits, now)
		resp.Statuses[i] = dec.status()
		counters.count(dec.result)
		if dec.code == rlsv3.RateLimitResponse_OVER_LIMIT {
			resp.OverallCode = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		if dec.result != resultError && !rule.Shadow && dec.restricts(&headerFrom) {
			headerFrom = dec
		}
	}
	if headerFrom.rule != nil {
		resp.ResponseHeadersToAdd = headerFrom.headers(resp.OverallCode == rlsv3.RateLimitResponse_OVER_LIMIT)
	}
	return resp, nil
}

// decision is the outcome of one descriptor.
type decision struct {
	rule      *policy.Rule
	code      rlsv3.RateLimitResponse_Code
	result    result
	remaining uint32
	reset     time.Duration // until the window ends
}

// decide counts hits for rule in the current window of its limit.
func (s *Server) decide(ctx context.Context, rule *policy.Rule, entries []*commonrlv3.RateLimitDescriptor_Entry, hits uint64, now time.Time) decision {
	per := rule.Limit.Per
	window := now.UnixNano() / int64(per)
	reset := time.Duration((window+1)*int64(per) - now.UnixNano())
	dec := decision{rule: rule, reset: reset}

	count, err := s.store.Increment(ctx, counterKey(s.domain, rule.ID, entries, window), hits, per)
	if err != nil {
		s.storeFailed(err)
		dec.result = resultError
		dec.code = rlsv3.RateLimitResponse_OK
		if s.mode == FailClosed {
			dec.code = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		return dec
	}
	s.storeWorks()
	limit := uint64(rule.Limit.Requests)
	if count <= limit {
		dec.remaining = uint32(limit - count)
		dec.code, dec.result = rlsv3.RateLimitResponse_OK, resultOK
		return dec
	}
	if rule.Shadow {
		dec.code, dec.result = rlsv3.RateLimitResponse_OK, resultShadow
		return dec
	}
	dec.code, dec.result = rlsv3.RateLimitResponse_OVER_LIMIT, resultOverLimit
	return dec
}

// restricts says whether d tells the client more than other (none if other.rule is
// nil): an over-limit decision before an OK one, then the longer wait (over limit) or
// the fewer requests left.
func (d *decision) restricts(other *decision) bool {
	if other.rule == nil {
		return true
	}
	over, otherOver := d.code == rlsv3.RateLimitResponse_OVER_LIMIT, other.code == rlsv3.RateLimitResponse_OVER_LIMIT
	switch {
	case over != otherOver:
		return over
	case over:
		return d.reset > other.reset
	}
	return d.remaining < other.remaining
}

func (d *decision) status() *rlsv3.RateLimitResponse_DescriptorStatus {
	st := &rlsv3.RateLimitResponse_DescriptorStatus{Code: d.code}
	if d.result == resultError {
		return st
	}
	st.CurrentLimit = rateLimitProto(d.rule)
	st.LimitRemaining = d.remaining
	st.DurationUntilReset = durationpb.New(d.reset)
	return st
}

// headers are the response headers that tell the client about d's limit.
func (d *decision) headers(over bool) []*corev3.HeaderValue {
	resetSeconds := strconv.FormatInt(int64((d.reset+time.Second-1)/time.Second), 10)
	hv := new([4]corev3.HeaderValue) // one allocation for the four
	hv[0].Key, hv[0].Value = "x-ratelimit-limit", strconv.FormatUint(uint64(d.rule.Limit.Requests), 10)
	hv[1].Key, hv[1].Value = "x-ratelimit-remaining", strconv.FormatUint(uint64(d.remaining), 10)
	hv[2].Key, hv[2].Value = "x-ratelimit-reset", resetSeconds
	if !over {
		return []*corev3.HeaderValue{&hv[0], &hv[1], &hv[2]}
	}
	hv[3].Key, hv[3].Value = "retry-after", resetSeconds
	return []*corev3.HeaderValue{&hv[0], &hv[1], &hv[2], &hv[3]}
}

// rateLimitProto is a rule's limit as RLS writes one: the largest unit that divides the
// period, times a multiplier.
func rateLimitProto(r *policy.Rule) *rlsv3.RateLimitResponse_RateLimit {
	per := r.Limit.Per
	out := &rlsv3.RateLimitResponse_RateLimit{Name: r.ID, RequestsPerUnit: r.Limit.Requests}
	unit, size := rlsv3.RateLimitResponse_RateLimit_SECOND, time.Second
	switch {
	case per%(24*time.Hour) == 0:
		unit, size = rlsv3.RateLimitResponse_RateLimit_DAY, 24*time.Hour
	case per%time.Hour == 0:
		unit, size = rlsv3.RateLimitResponse_RateLimit_HOUR, time.Hour
	case per%time.Minute == 0:
		unit, size = rlsv3.RateLimitResponse_RateLimit_MINUTE, time.Minute
	}
	out.Unit = unit
	if n := per / size; n != 1 {
		out.UnitMultiplier = wrapperspb.UInt32(uint32(n))
	}
	return out
}

// counterKey names the counter of one rule, one client and one window:
// "trellis-rl:<domain>:<rule id>:<window>" followed by ":<len>:<value>" for each entry
// after the first, so that no value can be mistaken for another.
func counterKey(domain, ruleID string, entries []*commonrlv3.RateLimitDescriptor_Entry, window int64) string {
	var stack [256]byte
	b := append(stack[:0], "trellis-rl:"...)
	b = append(b, domain...)
	b = append(b, ':')
	b = append(b, ruleID...)
	b = append(b, ':')
	b = strconv.AppendInt(b, window, 10)
	for _, e := range entries[1:] {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(len(e.GetValue())), 10)
		b = append(b, ':')
		b = append(b, e.GetValue()...)
	}
	return string(b)
}

// storeFailed logs the first failure of an outage.
func (s *Server) storeFailed(err error) {
	if !s.storeDown.Load() && s.storeDown.CompareAndSwap(false, true) {
		s.log.Warn("rate-limit store failed; answering per the failure mode until it recovers",
			"failure_mode", s.mode.String(), "error", err)
	}
}

// storeWorks logs the end of an outage.
func (s *Server) storeWorks() {
	if s.storeDown.Load() && s.storeDown.CompareAndSwap(true, false) {
		s.log.Info("rate-limit store recovered")
	}
}

package runtime

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Rate limiting (docs/xds.md, "Rate limiting"): the local_ratelimit and ratelimit HTTP
// filters, configured per route, and the rate_limits actions that make a request's
// descriptors. The proxy's ratelimit package enforces what is parsed here.

// Names of the rate-limit filters.
const (
	LocalRateLimitFilter = "envoy.filters.http.local_ratelimit"
	RateLimitFilter      = "envoy.filters.http.ratelimit"
	// PeerMetadataFilter and PeerPrincipalKey are the only dynamic metadata a
	// metadata action may read: the client's principal on mutual TLS.
	PeerMetadataFilter = "istio_authn"
	PeerPrincipalKey   = "source.principal"
)

// DescriptorEntry is one entry of a rate-limit descriptor.
type DescriptorEntry struct{ Key, Value string }

// TokenBucket is a local bucket: MaxTokens, refilled with TokensPerFill every
// FillInterval.
type TokenBucket struct {
	MaxTokens     uint32
	TokensPerFill uint32
	FillInterval  time.Duration
}

// LocalRateLimit is a route's local_ratelimit configuration.
type LocalRateLimit struct {
	StatPrefix string
	// Descriptors are the configured buckets; a request's descriptor uses every one
	// whose entries it matches (an empty value matches any value, with a bucket per
	// value). A request that matches none is not limited.
	Descriptors []LocalDescriptor
	// Policies make the request's descriptors.
	Policies []RateLimitPolicy
	// Enabled and Enforced: the share of requests checked, and of those refused when
	// over; a descriptor in shadow mode is never enforced.
	Enabled, Enforced Fraction
	// Headers adds x-ratelimit-limit/-remaining/-reset (DRAFT_VERSION_03);
	// RetryAfter adds retry-after to a refusal.
	Headers, RetryAfter bool
	// MaxDynamic bounds the buckets made for the values of wildcard entries.
	MaxDynamic uint32
}

// LocalDescriptor is one configured bucket.
type LocalDescriptor struct {
	Entries []DescriptorEntry
	Bucket  TokenBucket
	Shadow  bool
	// Key identifies the bucket across tables: the listener's stat prefix, the
	// entries and the bucket's settings, so an unchanged bucket keeps its tokens.
	Key string
	// Wildcard is set when an entry's value is empty.
	Wildcard bool
}

// Matches reports whether the request descriptor d uses this bucket.
func (ld *LocalDescriptor) Matches(d []DescriptorEntry) bool {
	if len(d) != len(ld.Entries) {
		return false
	}
	for i, e := range ld.Entries {
		if d[i].Key != e.Key || (e.Value != "" && d[i].Value != e.Value) {
			return false
		}
	}
	return true
}

// GlobalRateLimit is an HTTP connection manager's ratelimit filter.
type GlobalRateLimit struct {
	Domain     string
	StatPrefix string
	// Cluster is the rate-limit service's cluster.
	Cluster         string
	Timeout         time.Duration
	FailureModeDeny bool
}

// DefaultRateLimitTimeout is Envoy's timeout of a rate-limit service call.
const DefaultRateLimitTimeout = 20 * time.Millisecond

// RateLimitPolicy is one rate_limits entry: its actions, in order, each adding an
// entry; if one cannot, the request has no descriptor from this entry.
type RateLimitPolicy struct {
	Actions []RateLimitAction
}

// ActionKind is the kind of a rate-limit action.
type ActionKind int

// The actions the sidecar implements.
const (
	ActionGenericKey ActionKind = iota
	ActionHeaderValueMatch
	ActionRequestHeaders
	ActionPeerPrincipal
)

// RateLimitAction is one action of a RateLimitPolicy.
type RateLimitAction struct {
	Kind ActionKind
	// Key is the entry's key; Value its value (generic_key, header_value_match).
	Key, Value string
	// Header is the header read by request_headers (canonical).
	Header string
	// Matchers and Expect: header_value_match adds its entry when all the matchers
	// hold (Expect) or when not all hold (!Expect).
	Matchers []HeaderMatcher
	Expect   bool
	// SkipIfAbsent: an absent header or principal adds no entry but keeps the
	// descriptor (else the descriptor is dropped); Default is used when absent.
	SkipIfAbsent bool
	Default      string
}

// AppendDescriptor appends the descriptor p makes for r (principal is the client's,
// "" when none) and reports whether it makes one; when not, dst is unchanged.
func (p *RateLimitPolicy) AppendDescriptor(dst []DescriptorEntry, r *http.Request, principal string) ([]DescriptorEntry, bool) {
	n := len(dst)
	for i := range p.Actions {
		a := &p.Actions[i]
		switch a.Kind {
		case ActionGenericKey:
			dst = append(dst, DescriptorEntry{a.Key, a.Value})
		case ActionHeaderValueMatch:
			all := true
			for j := range a.Matchers {
				if !a.Matchers[j].matches(r) {
					all = false
					break
				}
			}
			if all != a.Expect {
				return dst[:n], false
			}
			dst = append(dst, DescriptorEntry{a.Key, a.Value})
		case ActionRequestHeaders, ActionPeerPrincipal:
			v, ok := principal, principal != ""
			if a.Kind == ActionRequestHeaders {
				v, ok = headerValue(r, a.Header)
			}
			switch {
			case ok:
			case a.Default != "":
				v = a.Default
			case a.SkipIfAbsent:
				continue
			default:
				return dst[:n], false
			}
			dst = append(dst, DescriptorEntry{a.Key, v})
		}
	}
	return dst, len(dst) > n
}

// parseRateLimitFilters reads the HCM's ratelimit filter, if any.
func parseRateLimitFilters(filters []*hcmv3.HttpFilter, spec *httpSpec) error {
	for i, f := range filters {
		if f.GetName() != RateLimitFilter {
			continue
		}
		at := fmt.Sprintf("http_filters[%d].typed_config", i)
		cfg := &rlv3.RateLimit{}
		if err := unpack(f.GetTypedConfig(), cfg); err != nil {
			return prefixed(at, err)
		}
		if err := checkFields(cfg.ProtoReflect(), rateLimitFilterFields); err != nil {
			return prefixed(at, err)
		}
		g := &GlobalRateLimit{Domain: cfg.GetDomain(), StatPrefix: cfg.GetStatPrefix(), Timeout: DefaultRateLimitTimeout,
			FailureModeDeny: cfg.GetFailureModeDeny(),
			Cluster:         cfg.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName()}
		if g.Cluster == "" {
			return fieldErrorf(at+".rate_limit_service.grpc_service.envoy_grpc.cluster_name", "is required")
		}
		if t := cfg.GetTimeout(); t != nil {
			var err error
			if g.Timeout, err = duration(t, at+".timeout"); err != nil {
				return err
			}
		}
		if err := pgv(cfg); err != nil {
			return prefixed(at, err)
		}
		spec.rateLimit = g
	}
	return nil
}

// parseLocalRateLimit reads a route's local_ratelimit configuration.
func parseLocalRateLimit(a *anypb.Any, route *Route) error {
	cfg := &localrlv3.LocalRateLimit{}
	if err := unpack(a, cfg); err != nil {
		return err
	}
	if err := checkFields(cfg.ProtoReflect(), localRateLimitFields); err != nil {
		return err
	}
	out := &LocalRateLimit{StatPrefix: cfg.GetStatPrefix(), RetryAfter: cfg.GetEnableRetryAfterHeader(),
		Headers:    cfg.GetEnableXRatelimitHeaders() == commonrlv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		MaxDynamic: 20, Enabled: Fraction{0, 100}, Enforced: Fraction{0, 100}}
	if m := cfg.GetMaxDynamicDescriptors(); m != nil {
		out.MaxDynamic = m.GetValue()
	}
	var err error
	if fe := cfg.GetFilterEnabled(); fe != nil {
		if out.Enabled, err = fraction(fe.GetDefaultValue()); err != nil {
			return prefixed("filter_enabled.default_value", err)
		}
	}
	if fe := cfg.GetFilterEnforced(); fe != nil {
		if out.Enforced, err = fraction(fe.GetDefaultValue()); err != nil {
			return prefixed("filter_enforced.default_value", err)
		}
	}
	if cfg.GetTokenBucket() == nil {
		return fieldErrorf("token_bucket", "is required in a route's configuration")
	}
	if _, err := tokenBucket(cfg.GetTokenBucket()); err != nil {
		return prefixed("token_bucket", err)
	}
	for i, d := range cfg.GetDescriptors() {
		at := fmt.Sprintf("descriptors[%d]", i)
		tb, err := tokenBucket(d.GetTokenBucket())
		if err != nil {
			return prefixed(at+".token_bucket", err)
		}
		ld := LocalDescriptor{Bucket: tb, Shadow: d.GetShadowMode()}
		var key strings.Builder
		key.WriteString(out.StatPrefix)
		for j, e := range d.GetEntries() {
			if e.GetKey() == "" {
				return fieldErrorf(fmt.Sprintf("%s.entries[%d].key", at, j), "is required")
			}
			ld.Entries = append(ld.Entries, DescriptorEntry{e.GetKey(), e.GetValue()})
			ld.Wildcard = ld.Wildcard || e.GetValue() == ""
			fmt.Fprintf(&key, "\x00%d:%s%d:%s", len(e.GetKey()), e.GetKey(), len(e.GetValue()), e.GetValue())
		}
		if len(ld.Entries) == 0 {
			return fieldErrorf(at+".entries", "must hold an entry")
		}
		key.WriteString("\x00" + strconv.FormatUint(uint64(tb.MaxTokens), 10) + "/" + strconv.FormatUint(uint64(tb.TokensPerFill), 10) + "/" + tb.FillInterval.String())
		ld.Key = key.String()
		out.Descriptors = append(out.Descriptors, ld)
	}
	if out.Policies, err = parseRateLimits(cfg.GetRateLimits(), "rate_limits"); err != nil {
		return err
	}
	if err := pgv(cfg); err != nil {
		return err
	}
	route.LocalRateLimit = out
	return nil
}

// parseRateLimitPerRoute reads a route's ratelimit configuration.
func parseRateLimitPerRoute(a *anypb.Any, route *Route) error {
	cfg := &rlv3.RateLimitPerRoute{}
	if err := unpack(a, cfg); err != nil {
		return err
	}
	if err := checkFields(cfg.ProtoReflect(), rateLimitPerRouteFields); err != nil {
		return err
	}
	var err error
	if route.RateLimits, err = parseRateLimits(cfg.GetRateLimits(), "rate_limits"); err != nil {
		return err
	}
	return pgv(cfg)
}

func tokenBucket(tb *typev3.TokenBucket) (TokenBucket, error) {
	if tb == nil {
		return TokenBucket{}, fieldErrorf("", "is required")
	}
	out := TokenBucket{MaxTokens: tb.GetMaxTokens(), TokensPerFill: 1}
	if v := tb.GetTokensPerFill(); v != nil {
		out.TokensPerFill = v.GetValue()
	}
	var err error
	if out.FillInterval, err = duration(tb.GetFillInterval(), "fill_interval"); err != nil {
		return out, err
	}
	switch {
	case out.MaxTokens == 0:
		return out, fieldErrorf("max_tokens", "must be at least 1")
	case out.TokensPerFill == 0:
		return out, fieldErrorf("tokens_per_fill", "must be at least 1")
	case out.FillInterval < 50*time.Millisecond:
		return out, fieldErrorf("fill_interval", "must be at least 50ms")
	}
	return out, nil
}

func parseRateLimits(rls []*routev3.RateLimit, at string) ([]RateLimitPolicy, error) {
	var out []RateLimitPolicy
	for i, rl := range rls {
		p := RateLimitPolicy{}
		for j, a := range rl.GetActions() {
			field := fmt.Sprintf("%s[%d].actions[%d]", at, i, j)
			var ra RateLimitAction
			switch s := a.GetActionSpecifier().(type) {
			case *routev3.RateLimit_Action_GenericKey_:
				ra = RateLimitAction{Kind: ActionGenericKey, Key: s.GenericKey.GetDescriptorKey(), Value: s.GenericKey.GetDescriptorValue()}
				if ra.Key == "" {
					ra.Key = "generic_key"
				}
			case *routev3.RateLimit_Action_HeaderValueMatch_:
				h := s.HeaderValueMatch
				ra = RateLimitAction{Kind: ActionHeaderValueMatch, Key: h.GetDescriptorKey(), Value: h.GetDescriptorValue(), Expect: true}
				if ra.Key == "" {
					ra.Key = "header_match"
				}
				if e := h.GetExpectMatch(); e != nil {
					ra.Expect = e.GetValue()
				}
				for k, hm := range h.GetHeaders() {
					m, err := parseHeaderMatcher(hm)
					if err != nil {
						return nil, prefixed(fmt.Sprintf("%s.header_value_match.headers[%d]", field, k), err)
					}
					ra.Matchers = append(ra.Matchers, m)
				}
			case *routev3.RateLimit_Action_RequestHeaders_:
				h := s.RequestHeaders
				ra = RateLimitAction{Kind: ActionRequestHeaders, Key: h.GetDescriptorKey(), Header: http.CanonicalHeaderKey(h.GetHeaderName()),
					SkipIfAbsent: h.GetSkipIfAbsent()}
				if strings.HasPrefix(h.GetHeaderName(), ":") || h.GetHeaderName() == "" {
					return nil, fieldErrorf(field+".request_headers.header_name", "%q is not supported (want a header name)", h.GetHeaderName())
				}
			case *routev3.RateLimit_Action_Metadata:
				m := s.Metadata
				path := m.GetMetadataKey().GetPath()
				if m.GetMetadataKey().GetKey() != PeerMetadataFilter || len(path) != 1 || path[0].GetKey() != PeerPrincipalKey ||
					m.GetSource() != routev3.RateLimit_Action_MetaData_DYNAMIC {
					return nil, fieldErrorf(field+".metadata", "only the DYNAMIC metadata %s.%s (the client's principal) is supported", PeerMetadataFilter, PeerPrincipalKey)
				}
				ra = RateLimitAction{Kind: ActionPeerPrincipal, Key: m.GetDescriptorKey(), SkipIfAbsent: m.GetSkipIfAbsent(), Default: m.GetDefaultValue()}
			default:
				return nil, fieldErrorf(field, "action %T is not supported (want generic_key, header_value_match, request_headers or metadata)", s)
			}
			if ra.Key == "" {
				return nil, fieldErrorf(field, "descriptor_key is required")
			}
			p.Actions = append(p.Actions, ra)
		}
		if len(p.Actions) == 0 {
			return nil, fieldErrorf(fmt.Sprintf("%s[%d].actions", at, i), "must hold an action")
		}
		out = append(out, p)
	}
	return out, nil
}

package forward

import (
	"context"
	"net/http"
	"strings"

	"trellis.dev/trellis/internal/proxy/ratelimit"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// RateLimiter decides whether a request is within its route's rate limits;
// *ratelimit.Limiter is one.
type RateLimiter interface {
	Check(ctx context.Context, chain *runtime.FilterChain, route *runtime.Route, req ratelimit.Request) ratelimit.Decision
}

var _ RateLimiter = (*ratelimit.Limiter)(nil)

// rateLimit applies the route's rate limits: a refused request is answered 429 (flag
// RL, or RLSE when the rate-limit service failed and the filter fails closed) with
// the limit's headers; an allowed one gets them on its response. It returns false
// when the request was answered.
func (h *HTTP) rateLimit(x *exchange, chain *runtime.FilterChain, route *runtime.Route) bool {
	rl := h.cfg.RateLimiter
	if rl == nil || route.LocalRateLimit == nil && len(route.RateLimits) == 0 {
		return true
	}
	d := rl.Check(x.down, chain, route, ratelimit.Request{HTTP: x.req, Principal: strings.TrimPrefix(x.info.PeerIdentity, "spiffe://")})
	hd := x.rw.Header()
	for _, hv := range d.Headers {
		hd.Set(hv.Name, hv.Value)
	}
	if !d.Refuse {
		return true
	}
	x.info.Flags.Set(d.Flag)
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	x.rw.WriteHeader(http.StatusTooManyRequests)
	x.rw.Write([]byte("rate limited\n"))
	return false
}

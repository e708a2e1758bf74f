package forward

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"

	"trellis.dev/trellis/internal/proxy/cluster"
	"trellis.dev/trellis/internal/proxy/extauthz"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

// Tables gives the runtime table in effect.
type Tables interface {
	Current() *runtime.Table
}

// HTTPConfig configures the HTTP request path.
type HTTPConfig struct {
	Tables Tables
	// Clusters keeps the clusters' live state (endpoints, breakers, outlier detection)
	// across tables.
	Clusters *cluster.Manager
	// Stats counts requests, response flags and retries.
	Stats *stats.Stats
	// Recorder, if set, also receives every finished request's Info (telemetry).
	Recorder reqinfo.Recorder
	// Telemetry, if set, sees every request start (before routing) and end, with the
	// Info's Telemetry part filled in.
	Telemetry Telemetry
	// PeerHeader, if set, is the value of the x-trellis-peer header (this workload)
	// sent on requests to clusters whose endpoints are mesh workloads (that carry
	// workload metadata).
	PeerHeader string
	// RateLimiter, if set, enforces the routes' rate limits (ratelimit.go).
	RateLimiter RateLimiter
	// ExtAuthz calls the external authorizers of ext_authz filters (authz.go);
	// without it their checks fail.
	ExtAuthz *extauthz.Client
	Logger   *slog.Logger
}

// Telemetry observes the HTTP path: Start when a request arrives, before routing (it
// may change the request's headers: trace context, the peer header), and Record when
// the request is over.
type Telemetry interface {
	Start(r *http.Request, info *reqinfo.Info)
	reqinfo.Recorder
}

// HTTP is the request path of HTTP connection manager listeners.
type HTTP struct {
	cfg       HTTPConfig
	upstreams *Upstreams
	mirrors   *mirrors
	// peerHeader is cfg.PeerHeader as a header value, shared by every request (its
	// capacity is its length, so an append copies it).
	peerHeader []string
}

// NewHTTP returns the HTTP request path. Close stops its mirror requests.
func NewHTTP(cfg HTTPConfig) *HTTP {
	h := &HTTP{cfg: cfg, mirrors: newMirrors(cfg.Logger)}
	if cfg.PeerHeader != "" {
		h.peerHeader = []string{cfg.PeerHeader}
	}
	h.upstreams = &Upstreams{logger: cfg.Logger, clusters: cfg.Clusters, stats: cfg.Stats, errorf: proxyError, pools: map[upstreamKey]*upstream{}}
	return h
}

// Upstreams returns the connection pools, to attach to each new table.
func (h *HTTP) Upstreams() *Upstreams { return h.upstreams }

// Close cancels the mirror requests in flight and waits for them.
func (h *HTTP) Close() { h.mirrors.close() }

// Handler returns the handler of the listener bound at addr. It looks the listener up
// in the current table on every request, so a new table applies to open connections.
func (h *HTTP) Handler(addr string) http.Handler {
	return &listenerHandler{h: h, addr: addr}
}

type listenerHandler struct {
	h    *HTTP
	addr string
}

func (lh *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := lh.h.cfg.Tables.Current().ListenerAt(lh.addr)
	chain := httpChain(l, r)
	if chain == nil {
		http.Error(w, "listener not configured", http.StatusServiceUnavailable)
		return
	}
	x := newExchange(w, r, l.Name)
	downstreamTLS(x, r, chain)
	badPath := normalize(r, chain.Normalize) // authz.go: before anything reads the path
	if t := lh.h.cfg.Telemetry; t != nil {
		x.info.Telemetry.Inbound = l.Inbound
		t.Start(r, &x.info)
	}
	defer lh.h.finish(x)
	if r.Method == http.MethodConnect {
		x.local(http.StatusMethodNotAllowed, "CONNECT is not supported", 0)
		return
	}
	if !validUpgrade(r.Header) {
		x.local(http.StatusBadRequest, "invalid Upgrade header", 0)
		return
	}
	if badPath != nil {
		x.local(http.StatusBadRequest, "bad request path", 0)
		return
	}
	if !lh.h.authorize(x, chain) {
		return
	}
	vh := chain.Routes.VirtualHost(r.Host)
	if vh == nil {
		x.local(http.StatusNotFound, "no route for host "+r.Host, reqinfo.NoRoute)
		return
	}
	route := vh.Route(r)
	if route == nil {
		x.local(http.StatusNotFound, "no route for path "+r.URL.Path, reqinfo.NoRoute)
		return
	}
	x.route = route
	if !lh.h.rateLimit(x, chain, route) {
		return
	}
	if route.Fault != nil && !lh.h.fault(x, route.Fault) {
		return
	}
	if route.CORS != nil && preflight(x, route.CORS) {
		return
	}
	switch {
	case route.Direct != nil:
		direct(x, route.Direct)
	case route.Redirect != nil:
		redirect(x, route)
	default:
		lh.h.forward(x, route)
	}
}

// finish records the request once it is over.
func (h *HTTP) finish(x *exchange) {
	info := &x.info
	info.Duration = time.Since(info.Start)
	info.Code = x.rw.status
	info.BytesSent = x.rw.written
	info.BytesReceived = x.body.n
	if info.Code == 0 && x.down.Err() != nil {
		info.Flags.Set(reqinfo.DownstreamConnectionTermination)
	}
	h.cfg.Stats.Record(info)
	if h.cfg.Recorder != nil {
		h.cfg.Recorder.Record(info)
	}
	if h.cfg.Telemetry != nil {
		tm := &info.Telemetry
		if !tm.Inbound && x.wc != nil && info.Host != "" {
			tm.Peer = x.wc.Cluster.Peers[info.Host]
		}
		tm.GRPCStatus = -1
		if tm.GRPC {
			tm.GRPCStatus = sentGRPCStatus(x.rw.Header())
		}
		h.cfg.Telemetry.Record(info)
	}
}

// sentGRPCStatus is the grpc-status sent to the client, in the headers or the
// trailers, or -1.
func sentGRPCStatus(h http.Header) int {
	v, ok := h["Grpc-Status"]
	if !ok {
		v = h[http.TrailerPrefix+"Grpc-Status"]
	}
	if len(v) == 0 {
		return -1
	}
	n, err := strconv.Atoi(v[0])
	if err != nil {
		return -1
	}
	return n
}

// forward sends the request to one of the route's clusters through its upstream,
// with the route's header changes, rewrites, hash key, mirrors and timeout.
func (h *HTTP) forward(x *exchange, route *runtime.Route) {
	a := route.Action
	wc := a.PickCluster()
	c := wc.Cluster
	x.info.Cluster = c.Name
	x.wc = wc
	up, _ := c.Upstream.(*upstream)
	if up == nil {
		x.local(http.StatusServiceUnavailable, "no healthy upstream", reqinfo.NoHealthyUpstream)
		return
	}
	r := x.req
	if h.peerHeader != nil && c.Peers != nil {
		r.Header[reqinfo.PeerHeader] = h.peerHeader
	}
	mutateRequest(r.Header, &wc.RequestHeaders, &route.RequestHeaders)
	rewrite(r, route)
	x.hashKey(a.HashPolicies)
	if a.Retry != nil && a.Retry.NumRetries > 0 || len(a.Mirrors) > 0 {
		x.bufferBody()
	}
	mirrored := false
	for i := range a.Mirrors {
		if m := &a.Mirrors[i]; m.Fraction.Sample() {
			h.mirrors.send(x, m, a.Timeout)
			mirrored = true
		}
	}
	ctx := x.down
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, a.Timeout, errRouteTimeout)
		defer cancel()
	}
	x.withContext(ctx)
	switch {
	case !up.relay(x, r):
		// The reverse proxy's transport may still read the body after it returns.
		up.proxy.ServeHTTP(&x.rw, r.WithContext(x.ctx()))
	case !mirrored:
		x.recycleReplay() // relay is done with the body, and no mirror has it
	}
}

// validUpgrade reports whether a request that asks to switch protocols names one in
// printable ASCII, as the reverse proxy requires; otherwise it would refuse the
// request as an upstream failure (503) rather than the client's (400).
func validUpgrade(h http.Header) bool {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return true
	}
	up := h.Get("Upgrade")
	for i := range len(up) {
		if up[i] < ' ' || up[i] > '~' {
			return false
		}
	}
	return true
}

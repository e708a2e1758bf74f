package forward

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"

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
	Stats  *stats.Stats
	Logger *slog.Logger
}

// HTTP is the request path of HTTP connection manager listeners.
type HTTP struct {
	cfg       HTTPConfig
	upstreams *Upstreams
}

// NewHTTP returns the HTTP request path.
func NewHTTP(cfg HTTPConfig) *HTTP {
	h := &HTTP{cfg: cfg}
	h.upstreams = &Upstreams{logger: cfg.Logger, errorf: h.proxyError, pools: map[upstreamKey]*upstream{}}
	return h
}

// Upstreams returns the connection pools, to attach to each new table.
func (h *HTTP) Upstreams() *Upstreams { return h.upstreams }

// Handler returns the handler of the listener bound at addr. It looks the listener up
// in the current table on every request, so a new table applies to open connections.
func (h *HTTP) Handler(addr string) http.Handler {
	return &listenerHandler{h: h, addr: addr}
}

type listenerHandler struct {
	h    *HTTP
	addr string
}

// reqInfo carries what the handler decided to the reverse proxy's hooks, and the
// status back.
type reqInfo struct {
	endpoint string
	status   int
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(infoKey{}).(*reqInfo)
	return info
}

var infoPool = sync.Pool{New: func() any { return new(reqInfo) }}

func (lh *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := lh.h.cfg.Tables.Current().ListenerAt(lh.addr)
	if l == nil || l.Routes == nil {
		http.Error(w, "listener not configured", http.StatusServiceUnavailable)
		return
	}
	lc := lh.h.cfg.Stats.Listener(l.Name)
	if r.Method == http.MethodConnect {
		lc.Response(http.StatusMethodNotAllowed)
		http.Error(w, "CONNECT is not supported", http.StatusMethodNotAllowed)
		return
	}
	vh := l.Routes.VirtualHost(r.Host)
	if vh == nil {
		lc.Response(http.StatusNotFound)
		http.Error(w, "no route for host "+r.Host, http.StatusNotFound)
		return
	}
	route := vh.Route(r.URL.Path)
	if route == nil {
		lc.Response(http.StatusNotFound)
		http.Error(w, "no route for path "+r.URL.Path, http.StatusNotFound)
		return
	}
	c := route.Cluster
	cc := lh.h.cfg.Stats.Cluster(c.Name)
	endpoint, ok := c.Picker.Pick()
	up, _ := c.Upstream.(*upstream)
	if !ok || up == nil {
		lc.Response(http.StatusServiceUnavailable)
		cc.Response(http.StatusServiceUnavailable)
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
		return
	}
	info := infoPool.Get().(*reqInfo)
	*info = reqInfo{endpoint: endpoint}
	defer func() {
		lc.Response(info.status)
		cc.Response(info.status)
		infoPool.Put(info)
	}()
	up.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
}

// proxyError answers a request the upstream did not: 503 "upstream connect error"
// when no connection could be made, 503 "upstream reset before response" when the
// connection broke before a response. A client that went away gets nothing.
func (h *HTTP) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	info := infoFrom(r.Context())
	if r.Context().Err() != nil {
		return // the client went away; info.status stays 0
	}
	msg := "upstream reset before response"
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		msg = "upstream connect error"
	}
	h.cfg.Logger.Debug("upstream request failed", "host", r.Host, "endpoint", info.endpoint, "error", err)
	info.status = http.StatusServiceUnavailable
	http.Error(w, msg, http.StatusServiceUnavailable)
}

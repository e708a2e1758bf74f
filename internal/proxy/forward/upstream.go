package forward

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// Tuning of the upstream connection pools.
const (
	maxIdleConnsPerHost = 256
	idleConnTimeout     = 60 * time.Second
	tcpKeepAlive        = 30 * time.Second
)

// Upstreams owns the connection pools of the clusters, one per cluster name and
// transport settings, reused across tables so that a configuration change keeps
// established connections. Attach and Close are called by the configuration path,
// one at a time; the request path only reads Cluster.Upstream.
type Upstreams struct {
	logger *slog.Logger
	errorf func(w http.ResponseWriter, r *http.Request, err error)

	mu    sync.Mutex
	pools map[upstreamKey]*upstream
}

type upstreamKey struct {
	cluster string
	http2   bool
	timeout time.Duration
}

// upstream is the connection pool of one cluster and the reverse proxy using it.
type upstream struct {
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

// Attach gives every cluster of t its upstream, reusing the pool of a cluster with the
// same name and settings, and closes the idle connections of pools that t no longer
// uses (requests in flight on the previous table finish normally). Call it before t is
// published.
func (u *Upstreams) Attach(t *runtime.Table) {
	u.mu.Lock()
	defer u.mu.Unlock()
	next := make(map[upstreamKey]*upstream, len(t.Clusters))
	for _, c := range t.Clusters {
		key := upstreamKey{cluster: c.Name, http2: c.HTTP2, timeout: c.ConnectTimeout}
		up := u.pools[key]
		if up == nil {
			up = u.newUpstream(key)
		}
		next[key] = up
		c.Upstream = up
	}
	for key, up := range u.pools {
		if next[key] == nil {
			up.transport.CloseIdleConnections()
		}
	}
	u.pools = next
}

// Close closes the idle connections of every pool.
func (u *Upstreams) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, up := range u.pools {
		up.transport.CloseIdleConnections()
	}
}

func (u *Upstreams) newUpstream(key upstreamKey) *upstream {
	dialer := &net.Dialer{Timeout: key.timeout, KeepAlive: tcpKeepAlive}
	protocols := new(http.Protocols)
	if key.http2 {
		// HTTP/2 with prior knowledge over plain TCP (h2c).
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	tr := &http.Transport{
		Proxy:               nil, // never honour HTTP_PROXY: the sidecar is the proxy
		DialContext:         dialer.DialContext,
		Protocols:           protocols,
		MaxIdleConns:        4 * maxIdleConnsPerHost,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     idleConnTimeout,
		DisableCompression:  true, // pass bodies through as they are
	}
	if key.http2 {
		tr.HTTP2 = &http.HTTP2Config{
			// Keep long-lived gRPC connections healthy.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     15 * time.Second,
		}
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: tr,
		// Zero: ReverseProxy flushes every write of a response of unknown length
		// (streams, gRPC, server-sent events) and buffers those of known length.
		FlushInterval: 0,
		ErrorHandler:  u.errorf,
		BufferPool:    copyBuffers,
		ErrorLog:      slog.NewLogLogger(u.logger.Handler(), slog.LevelDebug),
		ModifyResponse: func(resp *http.Response) error {
			if info := infoFrom(resp.Request.Context()); info != nil {
				info.status = resp.StatusCode
			}
			grpcTrailersOnly(resp)
			return nil
		},
	}
	return &upstream{transport: tr, proxy: rp}
}

// forwardedHeaders are the forwarding headers that ReverseProxy's Rewrite mode strips;
// the sidecar passes the client's values through unchanged and adds none of its own.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// rewrite sends the request to the endpoint picked for it, in origin form, keeping
// the Host header.
func rewrite(pr *httputil.ProxyRequest) {
	info := infoFrom(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = info.endpoint
	pr.Out.URL.User = nil
	for _, h := range forwardedHeaders {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
}

// grpcStatusHeaders are the fields of a gRPC status.
var grpcStatusHeaders = []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"}

// grpcTrailersOnly turns a gRPC "Trailers-Only" response (one HTTP/2 HEADERS frame
// that ends the stream and carries the status) into headers plus trailers. Forwarded
// as it is, the headers could be flushed before the handler returns, and the client
// would see a stream that ends without a status.
func grpcTrailersOnly(resp *http.Response) {
	if resp.ProtoMajor != 2 || resp.ContentLength != 0 || len(resp.Trailer) > 0 {
		return
	}
	if _, ok := resp.Header["Grpc-Status"]; !ok {
		return
	}
	resp.Trailer = http.Header{}
	for _, h := range grpcStatusHeaders {
		if v, ok := resp.Header[h]; ok {
			resp.Trailer[h] = v
			delete(resp.Header, h)
		}
	}
}

// bufferPool recycles the reverse proxy's body copy buffers, which it would otherwise
// allocate (32 KiB) per request.
type bufferPool struct{ p sync.Pool }

var copyBuffers httputil.BufferPool = &bufferPool{p: sync.Pool{New: func() any {
	b := make([]byte, 32*1024)
	return &b
}}}

func (b *bufferPool) Get() []byte { return *(b.p.Get().(*[]byte)) }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32*1024 {
		b.p.Put(&buf)
	}
}

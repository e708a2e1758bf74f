package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"trellis.dev/trellis/internal/proxy/cluster"
	"trellis.dev/trellis/internal/proxy/internal/rawtcp"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

// Tuning of the upstream connection pools.
const (
	maxIdleConnsPerHost = 256
	tcpKeepAlive        = 30 * time.Second
)

// Upstreams owns the connection pools of the clusters, one per cluster name and
// transport settings, reused across tables so that a configuration change keeps
// established connections, and asks the cluster manager for each cluster's live
// state. Attach and Close are called by the configuration path, one at a time; the
// request path only reads Cluster.Upstream.
type Upstreams struct {
	logger   *slog.Logger
	clusters *cluster.Manager
	stats    *stats.Stats
	errorf   func(w http.ResponseWriter, r *http.Request, err error)

	mu    sync.Mutex
	pools map[upstreamKey]*upstream
}

type upstreamKey struct {
	cluster     string
	http2       bool
	timeout     time.Duration
	idleTimeout time.Duration
	maxPerConn  uint32
	tls         string // runtime.UpstreamTLS.Key; empty: plaintext
}

// upstream is one cluster's connection pool, the reverse proxy using it (for what
// relay does not serve), and the
// cluster's live state (shared by every pool of the cluster's name).
type upstream struct {
	// closeIdle closes the pool's idle connections.
	closeIdle func()
	attempts  *attempts
	proxy     *httputil.ReverseProxy
	state     *cluster.State
	// errorf answers a request the upstream did not (proxyError); logger gets the
	// errors of relayed response bodies (relay.go).
	errorf func(w http.ResponseWriter, r *http.Request, err error)
	logger *slog.Logger
}

// Attach gives every cluster of t its upstream, reusing the pool of a cluster with the
// same name and settings, syncs the clusters' live state, and closes the idle
// connections of pools that t no longer uses (requests in flight on the previous
// table finish normally). Call it before t is published.
func (u *Upstreams) Attach(t *runtime.Table) {
	u.mu.Lock()
	defer u.mu.Unlock()
	states := u.clusters.Sync(t.Clusters)
	next := make(map[upstreamKey]*upstream, len(t.Clusters))
	for _, c := range t.Clusters {
		key := upstreamKey{cluster: c.Name, http2: c.HTTP2, timeout: c.ConnectTimeout,
			idleTimeout: c.IdleTimeout, maxPerConn: c.MaxRequestsPerConnection}
		var tlsConfig *tls.Config
		if c.TLS != nil {
			key.tls, tlsConfig = c.TLS.Key, c.TLS.Config
		}
		up := u.pools[key]
		if up == nil {
			up = u.newUpstream(key, states[c.Name], tlsConfig)
		}
		next[key] = up
		c.Upstream = up
	}
	for key, up := range u.pools {
		if next[key] == nil {
			up.attempts.retired.Store(true)
			up.closeIdle()
		}
	}
	u.pools = next
}

// Close closes the idle connections of every pool.
func (u *Upstreams) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, up := range u.pools {
		up.closeIdle()
	}
}

func (u *Upstreams) newUpstream(key upstreamKey, state *cluster.State, tlsConfig *tls.Config) *upstream {
	dialer := &net.Dialer{Timeout: key.timeout, KeepAlive: tcpKeepAlive}
	dial := rawDial(dialer.DialContext)
	if key.tls != "" {
		// TLS under the transport: it sees a plain connection, pools and reuses it.
		dial = tlsDial(dial, tlsConfig, key.timeout, u.stats.Cluster(key.cluster))
	}
	if key.maxPerConn > 0 && !key.http2 {
		dial = countingDial(dial)
	}
	protocols := new(http.Protocols)
	if key.http2 {
		// HTTP/2 with prior knowledge over plain TCP (h2c).
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	tr := &http.Transport{
		Proxy:               nil, // never honour HTTP_PROXY: the sidecar is the proxy
		DialContext:         dial,
		Protocols:           protocols,
		MaxIdleConns:        4 * maxIdleConnsPerHost,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     key.idleTimeout, // zero: no limit, as Envoy's 0
		DisableCompression:  true,            // pass bodies through as they are
	}
	if key.http2 {
		tr.HTTP2 = &http.HTTP2Config{
			// Keep long-lived gRPC connections healthy.
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     15 * time.Second,
		}
	}
	// HTTP/1.1 goes through h1Transport, which serves what it can on the request's
	// goroutine and leaves the rest (streamed bodies, upgrades) to tr.
	var base http.RoundTripper = tr
	closeIdle := tr.CloseIdleConnections
	if !key.http2 {
		h1 := newH1Transport(dial, key.idleTimeout, tr)
		base, closeIdle = h1, h1.CloseIdleConnections
	}
	at := &attempts{base: base, state: state, http2: key.http2, maxPerConn: key.maxPerConn, stats: u.stats.Cluster(key.cluster),
		closeIdle: closeIdle}
	if key.http2 {
		at.maxPerConn = 0
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   outgoing,
		Transport: at,
		// Zero: ReverseProxy flushes every write of a response of unknown length
		// (streams, gRPC, server-sent events) and buffers those of known length.
		FlushInterval:  0,
		ErrorHandler:   u.errorf,
		BufferPool:     copyBuffers,
		ErrorLog:       slog.NewLogLogger(u.logger.Handler(), slog.LevelDebug),
		ModifyResponse: modifyResponse,
	}
	return &upstream{closeIdle: closeIdle, attempts: at, proxy: rp, state: state, errorf: u.errorf, logger: u.logger}
}

// rawDial wraps dialed TCP connections in rawtcp.Conn: reads and writes without the
// runtime's syscall bookkeeping (internal/proxy/internal/rawtcp).
func rawDial(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawtcp.Wrap(c), nil
	}
}

// countingDial wraps connections so that closeAfter can count their requests.
func countingDial(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedConn{Conn: c}, nil
	}
}

// countedConn is an upstream connection with its request count.
type countedConn struct {
	net.Conn
	uses atomic.Uint32
}

// forwardedHeaders are the forwarding headers that ReverseProxy's Rewrite mode strips;
// the sidecar passes the client's values through unchanged and adds none of its own,
// unless the client's Connection header names them (hop-by-hop, not forwarded).
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// outgoing prepares the request for the upstream in origin form, keeping the Host
// header; the attempts transport fills in the endpoint.
func outgoing(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.User = nil
	for _, h := range forwardedHeaders {
		if v, ok := pr.In.Header[h]; ok && !httpguts.HeaderValuesContainsToken(pr.In.Header["Connection"], h) {
			pr.Out.Header[h] = v
		}
	}
}

// modifyResponse applies the route's response header changes, its CORS headers and
// a generated hash cookie, and reshapes gRPC trailers-only responses.
func modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	if x != nil && x.route != nil {
		mutateResponse(resp.Header, &x.wc.ResponseHeaders, &x.route.ResponseHeaders)
		if x.route.CORS != nil {
			corsHeaders(x, resp.Header)
		}
		if x.setCookie != "" {
			resp.Header.Add("Set-Cookie", x.setCookie)
		}
	}
	grpcTrailersOnly(resp)
	if x != nil {
		moveHeaders(x.rw.Header(), resp)
	}
	return nil
}

// moveHeaders hands the response's header values to the client's response as they
// are: the reverse proxy would copy them value by value (an allocation each) and
// finds nothing left to copy. A key the sidecar already set (rate-limit headers, for
// instance) keeps its values first, as the copy would. Upgrades and event streams
// keep their headers, which the reverse proxy reads after this hook.
func moveHeaders(dst http.Header, resp *http.Response) {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return
	}
	if ct := resp.Header["Content-Type"]; len(ct) > 0 && strings.HasPrefix(ct[0], "text/event-stream") {
		return
	}
	for k, vv := range resp.Header {
		if have, ok := dst[k]; ok {
			dst[k] = append(have, vv...)
		} else {
			dst[k] = vv
		}
	}
	clear(resp.Header)
}

// proxyError answers a request the upstream did not: the sidecar's own answer for the
// failure (503 connect error, reset, overflow, no healthy upstream; 504 timeout). A
// client that went away gets nothing.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	if x == nil || x.down.Err() != nil {
		return // the client went away; no status
	}
	var le *localError
	if !errors.As(err, &le) {
		le = &localError{status: http.StatusServiceUnavailable, msg: "upstream reset before response", flag: 0}
	}
	if le.flag != 0 {
		x.info.Flags.Set(le.flag)
	}
	http.Error(w, le.msg, le.status)
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
// allocate (32 KiB) per request. It pools array pointers: Put converts the slice back
// to its array pointer, which, unlike taking the address of a slice header, does not
// allocate.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

var copyBuffers httputil.BufferPool = &bufferPool{p: sync.Pool{New: func() any {
	return new([copyBufferSize]byte)
}}}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}

package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/extauthz"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

// TCP is the connection path of TCP proxy listeners.
type TCP struct {
	Stats *stats.Stats
	// Recorder, if set, sees every connection open and close (telemetry).
	Recorder reqinfo.TCPRecorder
	// ExtAuthz calls the external authorizers of network ext_authz filters
	// (authz.go).
	ExtAuthz *extauthz.Client
	Logger   *slog.Logger
}

// Serve proxies one accepted connection: it draws one of the listener's clusters by
// weight, picks an endpoint with the cluster's balancer (an ORIGINAL_DST cluster's
// endpoint is the connection's original destination, runtime.OriginalDstFrom; a
// cluster without endpoints closes the connection), dials it with the cluster's
// connect timeout, copies both ways passing half-closes on, and closes both
// connections when both directions are done, either fails, or nothing has moved in
// either direction for the idle timeout. It returns when the connection is over;
// closing down (the caller's way to end it early) ends it.
func (p *TCP) Serve(ctx context.Context, down net.Conn, l *runtime.Listener) {
	defer down.Close()
	if len(l.TCP.Authz) > 0 && !p.authorizeConn(ctx, down, l) {
		return
	}
	c := l.TCP.Pick(rand.Uint64N(max(l.TCP.TotalWeight(), 1)))
	lc, cc := p.Stats.Listener(l.Name), p.Stats.Cluster(c.Name)
	for _, ctr := range []*stats.Counters{lc, cc} {
		ctr.TCPTotal.Add(1)
		ctr.TCPActive.Add(1)
		defer ctr.TCPActive.Add(-1)
	}
	up, _ := c.Upstream.(*upstream)
	var (
		ep   *lb.Endpoint
		addr string // where to connect
	)
	switch {
	case c.OriginalDst: // PassthroughCluster: the connection's own destination
		if dst, ok := runtime.OriginalDstFrom(ctx); ok {
			addr = dst.String()
		}
	case up != nil:
		if ep = up.state.Pick(lb.Request{}); ep != nil {
			addr = ep.Addr
		}
	}
	var ti *reqinfo.TCPInfo
	if p.Recorder != nil {
		ti = &reqinfo.TCPInfo{Listener: l.Name, Inbound: l.Inbound, Start: time.Now(), Cluster: c.Name}
		if addr != "" {
			ti.Host, ti.Peer = addr, c.Peers[addr]
		} else {
			ti.Flags.Set(reqinfo.NoHealthyUpstream)
		}
		p.Recorder.TCPOpened(ti)
		defer func() {
			ti.Duration = time.Since(ti.Start)
			p.Recorder.TCPClosed(ti)
		}()
	}
	if addr == "" {
		p.Logger.Debug("no endpoint for TCP connection", "listener", l.Name, "cluster", c.Name)
		return
	}
	if ep != nil {
		ep.Begin()
		defer ep.End()
	}
	dialer := net.Dialer{Timeout: c.ConnectTimeout}
	dial := rawDial(dialer.DialContext)
	if c.TLS != nil {
		dial = tlsDial(dial, withoutALPN(c.TLS.Config), c.ConnectTimeout, cc)
	}
	upc, err := dial(ctx, "tcp", addr)
	if err != nil {
		if ep != nil {
			up.state.Report(ep, lb.Result{LocalFailure: true})
		}
		p.Logger.Debug("connecting TCP upstream", "listener", l.Name, "endpoint", addr, "error", err)
		if ti != nil {
			ti.Flags.Set(reqinfo.UpstreamConnectFailure)
		}
		return
	}
	defer upc.Close()
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			upc.Close()
			down.Close()
		})
	}
	var src, dst net.Conn = down, upc
	if idle := l.TCP.IdleTimeout; idle > 0 {
		w := newIdleWatch(idle, closeBoth)
		defer w.stop()
		src, dst = &activeConn{Conn: down, w: w}, &activeConn{Conn: upc, w: w}
	}
	var wg sync.WaitGroup
	var sent int64
	wg.Go(func() { sent = pipe(src, dst, closeBoth) })
	received := pipe(dst, src, closeBoth)
	wg.Wait()
	if ti != nil {
		ti.BytesReceived, ti.BytesSent = received, sent
	}
}

// pipe copies src to dst and returns the bytes copied; at src's end it half-closes
// dst, on an error it closes both.
func pipe(dst, src net.Conn, closeBoth func()) int64 {
	n, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		closeBoth()
		return n
	}
	if cw, ok := unwrapConn(dst).(interface{ CloseWrite() error }); ok && err == nil {
		if cw.CloseWrite() == nil {
			return n
		}
	}
	closeBoth()
	return n
}

func unwrapConn(c net.Conn) net.Conn {
	if a, ok := c.(*activeConn); ok {
		return a.Conn
	}
	return c
}

// idleWatch closes a proxied connection pair when neither side has sent anything for
// the idle timeout. Reads mark activity; a timer checks, and re-arms for the rest of
// the timeout when there was some. mu orders the timer's re-arming with stop.
type idleWatch struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last read

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

func newIdleWatch(idle time.Duration, expire func()) *idleWatch {
	w := &idleWatch{idle: idle}
	w.last.Store(time.Now().UnixNano())
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(idle, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.stopped {
			return
		}
		since := time.Duration(time.Now().UnixNano() - w.last.Load())
		if since >= idle {
			w.stopped = true
			expire()
			return
		}
		w.timer.Reset(idle - since)
	})
	return w
}

func (w *idleWatch) touch() { w.last.Store(time.Now().UnixNano()) }

func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

// activeConn marks activity on every read.
type activeConn struct {
	net.Conn
	w *idleWatch
}

func (c *activeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.w.touch()
	}
	return n, err
}

// withoutALPN is cfg offering no application protocol: a TCP proxy does not know
// what its bytes are, and a server sidecar that detects protocols takes a connection
// without ALPN as TCP (docs/xds.md, "Protocol detection").
func withoutALPN(cfg *tls.Config) *tls.Config {
	if cfg == nil || len(cfg.NextProtos) == 0 {
		return cfg
	}
	c := cfg.Clone()
	c.NextProtos = nil
	return c
}

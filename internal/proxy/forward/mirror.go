package forward

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// Limits of request mirroring.
const (
	// maxMirrors bounds the mirror requests in flight; beyond it copies are dropped
	// rather than let a slow mirror hold the sidecar's memory.
	maxMirrors = 128
	// mirrorTimeout bounds a mirror request when its route sets no timeout.
	mirrorTimeout = 30 * time.Second
)

// mirrors sends fire-and-forget copies of requests to mirror clusters. It owns the
// goroutines of the copies in flight; close cancels and waits for them.
type mirrors struct {
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}
}

func newMirrors(logger *slog.Logger) *mirrors {
	ctx, cancel := context.WithCancel(context.Background())
	return &mirrors{logger: logger, ctx: ctx, cancel: cancel, slots: make(chan struct{}, maxMirrors)}
}

func (m *mirrors) close() {
	m.cancel()
	m.wg.Wait()
}

// hopHeaders are not copied into a mirror request.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// send mirrors the request (as it leaves for the upstream: headers changed and path
// rewritten) to mirror m's cluster with "-shadow" appended to the host. Its answer
// is discarded and it never affects the main request. A request whose body was too
// large to buffer is not mirrored.
func (m *mirrors) send(x *exchange, mirror *runtime.Mirror, timeout time.Duration) {
	r := x.req
	if !x.replayable {
		return
	}
	up, _ := mirror.Cluster.Upstream.(*upstream)
	if up == nil {
		return
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.logger.Debug("mirror dropped: too many in flight", "cluster", mirror.Cluster.Name)
		return
	}
	if timeout <= 0 {
		timeout = mirrorTimeout
	}
	u := *r.URL
	u.Scheme = "http"
	hdr := r.Header.Clone()
	for _, h := range hopHeaders {
		delete(hdr, h)
	}
	method, host, body := r.Method, shadowHost(r.Host), x.replay
	m.wg.Go(func() {
		defer func() { <-m.slots }()
		ctx, cancel := context.WithTimeout(m.ctx, timeout)
		defer cancel()
		ep := up.state.Pick(lb.Request{})
		if ep == nil {
			return
		}
		u.Host = ep.Addr
		var rb io.Reader
		if len(body) > 0 {
			rb = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rb)
		if err != nil {
			return
		}
		req.Header, req.Host = hdr, host
		ep.Begin()
		defer ep.End()
		resp, err := up.attempts.base.RoundTrip(req)
		if err != nil {
			m.logger.Debug("mirror request failed", "cluster", mirror.Cluster.Name, "endpoint", ep.Addr, "error", err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
}

// shadowHost appends "-shadow" to the host name, before the port if there is one
// ("echo:8080" becomes "echo-shadow:8080").
func shadowHost(host string) string {
	if h, p, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h+"-shadow", p)
	}
	return host + "-shadow"
}

package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"

	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
)

// TCP is the connection path of TCP proxy listeners.
type TCP struct {
	Stats  *stats.Stats
	Logger *slog.Logger
}

// Serve proxies one accepted connection to an endpoint of l's cluster: it dials with
// the cluster's connect timeout, copies both ways passing half-closes on, and closes
// both connections when both directions are done or either fails. It returns when the
// connection is over; closing down (the caller's way to end it early) ends it.
func (p *TCP) Serve(ctx context.Context, down net.Conn, l *runtime.Listener) {
	defer down.Close()
	lc, cc := p.Stats.Listener(l.Name), p.Stats.Cluster(l.Cluster.Name)
	for _, c := range []*stats.Counters{lc, cc} {
		c.TCPTotal.Add(1)
		c.TCPActive.Add(1)
		defer c.TCPActive.Add(-1)
	}
	endpoint, ok := l.Cluster.Picker.Pick()
	if !ok {
		p.Logger.Debug("no endpoint for TCP connection", "listener", l.Name, "cluster", l.Cluster.Name)
		return
	}
	dialer := net.Dialer{Timeout: l.Cluster.ConnectTimeout}
	up, err := dialer.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		p.Logger.Debug("connecting TCP upstream", "listener", l.Name, "endpoint", endpoint, "error", err)
		return
	}
	defer up.Close()
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			up.Close()
			down.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, down, closeBoth) })
	pipe(down, up, closeBoth)
	wg.Wait()
}

// pipe copies src to dst; at src's end it half-closes dst, on an error it closes both.
func pipe(dst, src net.Conn, closeBoth func()) {
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		closeBoth()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		if cw.CloseWrite() == nil {
			return
		}
	}
	closeBoth()
}

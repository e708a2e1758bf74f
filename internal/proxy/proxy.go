package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/proxy/admin"
	"trellis.dev/trellis/internal/proxy/cluster"
	"trellis.dev/trellis/internal/proxy/dns"
	"trellis.dev/trellis/internal/proxy/extauthz"
	"trellis.dev/trellis/internal/proxy/forward"
	"trellis.dev/trellis/internal/proxy/listener"
	"trellis.dev/trellis/internal/proxy/ratelimit"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/proxy/stats"
	"trellis.dev/trellis/internal/proxy/telemetry"
	"trellis.dev/trellis/internal/proxy/xdsclient"
	"trellis.dev/trellis/internal/serverlimits"
)

// DefaultDrainPeriod is the drain period when neither Config.DrainPeriod nor the
// bootstrap sets one.
const DefaultDrainPeriod = bootstrap.DefaultDrainPeriod

// SkipDrainPeriod, as the cause of the cancellation of Run's context
// (context.WithCancelCause), makes the sidecar stop accepting at once instead of after
// its drain period: requests in flight still get the drain period to finish. It is for
// a sidecar whose clients are gone already (`trellis up` stops the apps first, and
// SIGINT at a terminal).
var SkipDrainPeriod = errors.New("stopping without a drain period")

// Config configures a sidecar.
type Config struct {
	// Bootstrap is the sidecar's start-up configuration: its node, the control plane's
	// xDS address, the protocol (SotW or Delta) and the admin address (loopback only).
	Bootstrap *bootstrap.Bootstrap
	// DrainPeriod is the one knob of the shutdown (docs/proxy.md, "Shutdown"): for
	// this long after Run's context ends the sidecar keeps accepting connections and
	// serving requests, without keep-alives, while its clients learn that it is
	// leaving; then it stops accepting, and requests and connections in flight have as
	// long again to finish before they are closed. Zero: the bootstrap's drainPeriod,
	// else DefaultDrainPeriod.
	DrainPeriod time.Duration
	// Limits bound what clients can make the sidecar's listeners (outbound, inbound,
	// admin, metrics) do (docs/limits.md); zero fields take their defaults.
	Limits serverlimits.Limits
	// Logger receives the sidecar's log.
	Logger *slog.Logger
	// ReleaseStartupPages is how long after it is first ready the sidecar gives back
	// the pages of its executable's code and read-only data that it holds resident
	// (package binpages): most were touched only by start-up, and those it keeps
	// using come back on their next touch. Zero: it keeps them.
	ReleaseStartupPages time.Duration
}

// Proxy is one sidecar. It is the xDS client's Handler: it validates each update,
// keeps the accepted resources, and swaps in a new runtime table when they are complete.
type Proxy struct {
	cfg       Config
	client    *xdsclient.Client
	admin     *admin.Server
	listeners *listener.Manager
	http      *forward.HTTP
	clusters  *cluster.Manager
	stats     *stats.Stats

	// Telemetry: metrics, access log, tracing (docs/telemetry.md); metricsSrv is nil
	// when the bootstrap names no metrics address; accessLog the opened log file.
	telemetry  *telemetry.Telemetry
	metricsSrv *telemetry.Server
	accessLog  io.Closer

	// sec is mutual TLS: the control plane connection, certificate and trust bundle.
	sec *security
	// dns answers the app's DNS queries (dnsserver.go); nil without bootstrap.DNS.
	dns *dns.Server

	table atomic.Pointer[runtime.Table]
	// limiter enforces rate limits; it keeps local buckets across tables.
	limiter *ratelimit.Limiter
	// extAuthz calls external authorizers (ext_authz filters).
	extAuthz *extauthz.Client
	ready    atomic.Bool
	draining atomic.Bool
	// pagesReleased is the resident size of the executable's pages given back
	// after start-up (pages.go).
	pagesReleased atomic.Uint64

	mu       sync.Mutex // guards accepted
	accepted map[string]xdsclient.Update
}

var (
	_ xdsclient.Handler = (*Proxy)(nil)
	_ admin.State       = (*Proxy)(nil)
	_ forward.Tables    = (*Proxy)(nil)
	_ listener.Tables   = (*Proxy)(nil)
)

// Run runs a sidecar until ctx ends, then drains it.
func Run(ctx context.Context, cfg Config) error {
	p, err := New(cfg)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// New checks the configuration and binds the admin address.
func New(cfg Config) (*Proxy, error) {
	if cfg.Bootstrap == nil {
		return nil, errors.New("proxy: no bootstrap")
	}
	if cfg.Logger == nil {
		return nil, errors.New("proxy: no logger")
	}
	b := cfg.Bootstrap
	if cfg.DrainPeriod <= 0 {
		cfg.DrainPeriod = b.DrainPeriod.Std()
	}
	if cfg.DrainPeriod <= 0 {
		cfg.DrainPeriod = DefaultDrainPeriod
	}
	if b.XDS == "" {
		return nil, fmt.Errorf("bootstrap of %s: no xds address", b.Node.ID)
	}
	announced := b.Node
	// The sidecar says itself whether it takes part in mutual TLS: it does when it
	// has a certificate source (docs/xds.md, "Security").
	announced.Metadata.MTLS = b.TokenFile != ""
	// It implements authorization and request authentication (docs/xds.md).
	announced.Metadata.Authz = true
	p := &Proxy{cfg: cfg, stats: &stats.Stats{}, accepted: map[string]xdsclient.Update{}}
	p.clusters = cluster.NewManager(cluster.Config{Logger: cfg.Logger})
	if err := p.newTelemetry(); err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", b.Node.ID, err)
	}
	p.limiter = ratelimit.New(ratelimit.Config{Logger: cfg.Logger.With("component", "ratelimit")})
	p.extAuthz = extauthz.NewClient(cfg.Logger)
	p.http = forward.NewHTTP(forward.HTTPConfig{Tables: p, Clusters: p.clusters, Stats: p.stats, Logger: cfg.Logger,
		Telemetry: p.telemetry, PeerHeader: p.telemetry.PeerHeader(), RateLimiter: p.limiter, ExtAuthz: p.extAuthz})
	p.listeners = listener.New(listener.Config{
		Tables:       p,
		HTTP:         p.http,
		TCP:          &forward.TCP{Stats: p.stats, Recorder: p.telemetry, ExtAuthz: p.extAuthz, Logger: cfg.Logger},
		Logger:       cfg.Logger,
		Stats:        p.stats,
		DrainTimeout: cfg.DrainPeriod,
		Limits:       cfg.Limits,
	})
	if err := p.newSecurity(); err != nil {
		p.abandonTelemetry()
		return nil, fmt.Errorf("sidecar %s: %w", b.Node.ID, err)
	}
	if err := p.newDNS(); err != nil {
		p.sec.conn.Close()
		p.abandonTelemetry()
		return nil, fmt.Errorf("sidecar %s: %w", b.Node.ID, err)
	}
	var err error
	p.admin, err = admin.New(admin.Config{Address: b.Admin, State: p, Limits: cfg.Limits, Logger: cfg.Logger})
	if err != nil {
		p.abandonTelemetry()
		return nil, fmt.Errorf("sidecar %s: %w", b.Node.ID, err)
	}
	// The control plane's dashboard scrapes and taps the sidecar where it says.
	announced.Metadata.Metrics, announced.Metadata.Admin = announcedMetrics(p.MetricsAddr()), p.admin.Addr()
	node, err := announced.ToProto()
	var servingNode *corev3.Node
	if err == nil {
		// On a reconnection with listeners serving, the node says so (docs/xds.md).
		announced.Metadata.Serving = true
		servingNode, err = announced.ToProto()
	}
	if err != nil {
		p.admin.Close()
		p.abandonTelemetry()
		return nil, fmt.Errorf("bootstrap of %s: %w", b.Node.ID, err)
	}
	p.client, err = xdsclient.New(xdsclient.Config{
		Conn:        p.sec.conn,
		Server:      b.XDS,
		Node:        node,
		ServingNode: servingNode,
		Serving:     func() bool { return p.table.Load() != nil },
		Delta:       b.Delta,
		Handler:     p,
		Metadata:    p.sec.streamMetadata,
		Logger:      cfg.Logger,
	})
	if err != nil {
		p.admin.Close()
		p.abandonTelemetry()
		return nil, err
	}
	return p, nil
}

// AdminAddr returns the admin listener's address.
func (p *Proxy) AdminAddr() string { return p.admin.Addr() }

// Current returns the runtime table in effect, or nil before the first one.
func (p *Proxy) Current() *runtime.Table { return p.table.Load() }

// Ready reports whether the first complete configuration is applied and the sidecar is
// not draining.
func (p *Proxy) Ready() bool { return p.ready.Load() && !p.draining.Load() && p.sec.certReady() }

// Run connects to the control plane and serves until ctx ends; then it drains: it
// marks itself not ready and closes its xDS stream (so the control plane removes its
// endpoints from the other sidecars' pools), keeps accepting without keep-alives for
// the drain period (none when ctx's cause is SkipDrainPeriod), then stops accepting,
// lets requests in flight finish for up to the drain period again, and closes
// everything.
func (p *Proxy) Run(ctx context.Context) error {
	log := p.cfg.Logger.With("node", p.cfg.Bootstrap.Node.ID)
	log.Info("sidecar starting", "xds", p.cfg.Bootstrap.XDS, "delta", p.cfg.Bootstrap.Delta, "admin", p.AdminAddr())

	adminCtx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	adminDone := make(chan error, 1)
	go func() { adminDone <- p.admin.Serve(adminCtx) }()

	metricsDone := make(chan error, 1)
	if p.metricsSrv != nil {
		go func() { metricsDone <- p.metricsSrv.Serve(adminCtx) }()
	} else {
		metricsDone <- nil
	}

	waitDNS := p.serveDNS(adminCtx)
	waitPages := p.releaseStartupPages(ctx, log)
	waitRotator := p.sec.run(ctx)
	xdsDone := make(chan error, 1)
	go func() { xdsDone <- p.client.Run(ctx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-adminDone:
		adminDone <- nil
	}
	p.draining.Store(true)
	period := p.cfg.DrainPeriod
	if errors.Is(context.Cause(ctx), SkipDrainPeriod) || runErr != nil {
		period = 0
	}
	start := time.Now()
	p.listeners.Drain()
	log.Info("sidecar draining", "period", period, "inFlightTimeout", p.cfg.DrainPeriod)
	if err := <-xdsDone; err != nil && runErr == nil {
		runErr = err
	}
	waitPages()
	waitRotator()
	p.sec.conn.Close()
	if wait := period - time.Since(start); wait > 0 {
		time.Sleep(wait) // the drain period: nothing to wait for but the time itself
	}
	log.Info("sidecar stops accepting", "afterDraining", time.Since(start).Round(time.Millisecond))
	drainCtx, cancel := context.WithTimeout(context.Background(), p.cfg.DrainPeriod)
	defer cancel()
	p.listeners.Shutdown(drainCtx)
	p.http.Close()
	p.limiter.Close()
	p.extAuthz.Close()
	p.http.Upstreams().Close()
	p.clusters.Close()
	p.closeTelemetry(drainCtx)
	stopAdmin()
	if err := <-adminDone; err != nil && runErr == nil {
		runErr = err
	}
	if err := <-metricsDone; err != nil && runErr == nil {
		runErr = err
	}
	if err := waitDNS(); err != nil && runErr == nil {
		runErr = err
	}
	log.Info("sidecar stopped")
	return runErr
}

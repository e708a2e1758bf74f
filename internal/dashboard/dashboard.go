package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/serverlimits"
)

// Defaults of Config.
const (
	DefaultScrapeInterval = 5 * time.Second
	DefaultRetention      = 15 * time.Minute
	DefaultMaxSeries      = 10000
	DefaultTapBacklog     = 500
	// tapLinger is how long the sidecars stay tapped after the last tap client left.
	tapLinger = 30 * time.Second
	// maxConcurrentScrapes bounds the scrapes of one round in flight.
	maxConcurrentScrapes = 8
)

// Sidecars lists the connected sidecars: the control plane's registry.
type Sidecars interface {
	Instances() []registry.Instance
}

var _ Sidecars = (*registry.Registry)(nil)

// Config configures the dashboard.
type Config struct {
	// Sidecars lists the sidecars to scrape and tap.
	Sidecars Sidecars
	// Limits bound the dashboard's HTTP clients (docs/limits.md); request bodies
	// are bounded by serverlimits.DefaultMaxBodyBytes unless they set less.
	Limits serverlimits.Limits
	// ScrapeInterval is how often every sidecar's /stats/prometheus is read. Default
	// 5s.
	ScrapeInterval time.Duration
	// Retention is how much history is kept in memory. Default 15m.
	Retention time.Duration
	// MaxSeries bounds the series (caller, service, callee, reporter, protocol) one
	// scrape round keeps; increases of more are dropped. Default 10000.
	MaxSeries int
	// Tap turns the live tap on: the dashboard reads the sidecars' admin /tap at the
	// admin addresses they announce, which must be reachable from the control plane
	// (local mode: loopback on the same host). Off in a cluster, where the admin
	// address is pod-local.
	Tap bool
	// TapBacklog is how many recent tapped requests a new tap client receives first.
	// Default 500.
	TapBacklog int
	Logger     *slog.Logger
}

// Dashboard scrapes the sidecars, keeps the recent history, and serves the web UI
// and its JSON API.
type Dashboard struct {
	cfg  Config
	hist *history
	taps *tapHub
	http *http.Client

	mu     sync.Mutex // guards status
	status map[string]*Sidecar
}

// New checks the configuration.
func New(cfg Config) (*Dashboard, error) {
	if cfg.Sidecars == nil {
		return nil, errors.New("dashboard: no sidecars")
	}
	if cfg.Logger == nil {
		return nil, errors.New("dashboard: no logger")
	}
	if cfg.ScrapeInterval <= 0 {
		cfg.ScrapeInterval = DefaultScrapeInterval
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	if cfg.TapBacklog <= 0 {
		cfg.TapBacklog = DefaultTapBacklog
	}
	// The sidecars are reached directly, never through a proxy from the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
	return &Dashboard{
		cfg:    cfg,
		hist:   newHistory(cfg.Retention, cfg.MaxSeries),
		taps:   newTapHub(client, cfg.Logger, cfg.TapBacklog, tapLinger),
		http:   client,
		status: map[string]*Sidecar{},
	}, nil
}

// Serve runs the scrape loop, the tap readers (when Tap is on) and the HTTP server
// on ln until ctx ends; it closes ln.
func (d *Dashboard) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lim := d.cfg.Limits.WithBodyLimit(serverlimits.DefaultMaxBodyBytes)
	srv := lim.Server(d.Handler(), d.cfg.Logger)
	// Tap streams end with the server's context.
	srv.BaseContext = func(net.Listener) context.Context { return ctx }
	ln = lim.Listener(ln)
	var wg sync.WaitGroup
	wg.Go(func() { d.scrapeLoop(ctx) })
	if d.cfg.Tap {
		wg.Go(func() { d.taps.run(ctx, d.cfg.Sidecars) })
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("serving the dashboard: %w", err)
		cancel()
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		<-errc
	}
	wg.Wait()
	d.http.CloseIdleConnections()
	return err
}

// scrapeLoop scrapes every sidecar every ScrapeInterval until ctx ends.
func (d *Dashboard) scrapeLoop(ctx context.Context) {
	tick := time.NewTicker(d.cfg.ScrapeInterval)
	defer tick.Stop()
	for {
		d.scrapeRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scrapeRound scrapes the registered sidecars concurrently and adds the round to
// the history.
func (d *Dashboard) scrapeRound(ctx context.Context) {
	instances := d.cfg.Sidecars.Instances()
	timeout := min(d.cfg.ScrapeInterval, 5*time.Second)
	var (
		mu    sync.Mutex
		snaps = map[string]*snapshot{}
		alive = map[string]bool{}
		wg    sync.WaitGroup
		sem   = make(chan struct{}, maxConcurrentScrapes)
	)
	for _, in := range instances {
		alive[in.NodeID] = true
		target := scrapeTarget(in.Metadata)
		d.setStatus(in.NodeID, func(s *Sidecar) { s.Metrics, s.Admin = target, in.Metadata.Admin })
		if target == "" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			snap, err := scrape(sctx, d.http, target)
			d.setStatus(in.NodeID, func(s *Sidecar) {
				if err != nil {
					s.Error = err.Error()
					return
				}
				s.Error, s.LastScrape = "", time.Now()
			})
			if err != nil {
				if ctx.Err() == nil {
					d.cfg.Logger.Debug("scraping a sidecar", "node", in.NodeID, "error", err)
				}
				return
			}
			mu.Lock()
			snaps[in.NodeID] = snap
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	d.hist.add(time.Now(), snaps, alive)
	d.mu.Lock()
	for node := range d.status {
		if !alive[node] {
			delete(d.status, node)
		}
	}
	d.mu.Unlock()
}

func (d *Dashboard) setStatus(node string, f func(*Sidecar)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status[node]
	if s == nil {
		s = &Sidecar{Node: node}
		d.status[node] = s
	}
	f(s)
}

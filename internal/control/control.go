package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/dashboard"
	"trellis.dev/trellis/internal/jwks"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/serverlimits"
	"trellis.dev/trellis/internal/source/file"
	"trellis.dev/trellis/internal/store"
	"trellis.dev/trellis/internal/xdsserver"
)

// Defaults of Config.
const (
	DefaultXDSAddr        = "127.0.0.1:15010"
	DefaultSecureXDSAddr  = "127.0.0.1:15012"
	DefaultMonitoringAddr = "127.0.0.1:15014"
	DefaultDashboardAddr  = "127.0.0.1:15080"
	DefaultDebounceAfter  = 100 * time.Millisecond
	// MaxDebounce bounds how long a burst of changes may delay a translation.
	MaxDebounce = time.Second
)

// ClusterDashboardAddr is the dashboard's address on Kubernetes.
const ClusterDashboardAddr = ":15080"

// Config configures the control plane.
type Config struct {
	// ConfigFiles are the mesh files (multi-document YAML) to load and watch.
	ConfigFiles []string
	// Kubernetes, if set, runs the control plane on Kubernetes: configuration and
	// service discovery come from the API server too (kube.go). ConfigFiles may then
	// be empty.
	Kubernetes *Kubernetes
	// XDSAddr is where plaintext xDS (ADS, SotW and Delta) is served. Default
	// 127.0.0.1:15010.
	XDSAddr string
	// SecureXDSAddr is where xDS and the CA service are served over TLS, with a
	// certificate from the control plane's own CA. Default 127.0.0.1:15012.
	SecureXDSAddr string
	// MonitoringAddr is where /metrics, /ready and /debug/* are served. Default
	// 127.0.0.1:15014.
	MonitoringAddr string
	// DataDir is the control plane's state directory (created if missing): the CA
	// root (ca/), the trust bundle (ca/roots.pem, TrustBundleFile) and the join token
	// (join-token, JoinTokenFile). Empty: a temporary directory, removed on exit.
	DataDir string
	// TrustDomain is the trust domain of the workloads' SPIFFE IDs. Default
	// cluster.local.
	TrustDomain string
	// RootNamespace holds the mesh-wide PeerAuthentication. Default trellis-system.
	RootNamespace string
	// CertTTL is the lifetime of workload certificates (and the most a sidecar may
	// ask for). Default 24h.
	CertTTL time.Duration
	// ExternalCA, if set, makes the CA sign with a user-supplied intermediate.
	ExternalCA *ca.ExternalCA
	// ServingNames are host names (or IPs) of the control plane, added to localhost
	// and 127.0.0.1 in the serving certificate of SecureXDSAddr.
	ServingNames []string
	// Logger receives the component's logs. Default: slog.Default().
	Logger *slog.Logger
	// DebounceAfter is the quiet period after a change before translating. Default
	// 100ms.
	DebounceAfter time.Duration
	// Warmup bounds how long, at start, the first push waits for the sidecars of the
	// Workloads declared in the files to register, so that a restarted control plane
	// does not push services without their endpoints. Default DefaultWarmup; negative:
	// no wait.
	Warmup time.Duration

	// Authz configures authorization: external authorizers, path normalization and
	// the fetching of JWT key sets (authz.go).
	Authz AuthzConfig
	// RateLimit configures rate limiting: the embedded rate-limit service, or an
	// external one (ratelimit.go).
	RateLimit RateLimitConfig

	// DashboardAddr is where the dashboard (web UI and JSON API, docs/dashboard.md)
	// is served; empty: no dashboard (`trellis control` defaults it to
	// DefaultDashboardAddr).
	DashboardAddr string
	// DashboardTap lets the dashboard read the sidecars' request taps at their
	// announced admin addresses, which only local mode can reach.
	DashboardTap bool
	// DashboardScrapeInterval is how often the dashboard scrapes the sidecars'
	// metrics. Default dashboard.DefaultScrapeInterval.
	DashboardScrapeInterval time.Duration

	// Limits bound what clients can make every listener of the control plane do
	// (xDS, CA, monitoring, webhooks, dashboard; docs/limits.md); zero fields take
	// their defaults. CSRRate and CSRBurst bound the certificate requests of one
	// peer address (casvc).
	Limits   serverlimits.Limits
	CSRRate  float64
	CSRBurst int
	// XDSRequireAuth refuses xDS streams (both listeners) whose caller does not
	// authenticate, with a workload certificate of the mesh CA (TLS listener) or as a
	// certificate request must (join token or service-account token, in the stream's
	// metadata), and streams whose node is not of the proven identity (xdsauth.go).
	// `trellis control` sets it unless --xds-allow-unauthenticated. Off, any client
	// that reaches the port may read the configuration of the node it names.
	XDSRequireAuth bool

	// XDSListener, SecureXDSListener, MonitoringListener and DashboardListener, if
	// set, are used instead of listening on XDSAddr, SecureXDSAddr, MonitoringAddr and
	// DashboardAddr (tests pass listeners on port 0). Run closes them.
	XDSListener        net.Listener
	SecureXDSListener  net.Listener
	MonitoringListener net.Listener
	DashboardListener  net.Listener
}

func (c *Config) setDefaults() {
	if c.XDSAddr == "" {
		c.XDSAddr = DefaultXDSAddr
	}
	if c.SecureXDSAddr == "" {
		c.SecureXDSAddr = DefaultSecureXDSAddr
	}
	if c.MonitoringAddr == "" {
		c.MonitoringAddr = DefaultMonitoringAddr
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DebounceAfter <= 0 {
		c.DebounceAfter = DefaultDebounceAfter
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
}

// Run runs the control plane until ctx ends, then stops gracefully and returns nil.
// It returns an error if it cannot start (a listener, the file source) or if a part
// fails while running.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	log := cfg.Logger
	if len(cfg.ConfigFiles) == 0 && cfg.Kubernetes == nil {
		return errors.New("starting control plane: no config files given")
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "trellis-control-")
		if err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	} else if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}

	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		if !started {
			lis.close()
		}
	}()

	st := store.New()
	var src *file.Source
	var sources []fileSource
	if len(cfg.ConfigFiles) > 0 {
		if src, err = file.New(file.Config{Paths: cfg.ConfigFiles, Store: st, Logger: log.With("component", "file-source")}); err != nil {
			return fmt.Errorf("starting file source: %w", err)
		}
		sources = append(sources, src)
	}
	var kube *kubePlane
	var secParts *securityParts
	var discovery endpointSource
	if cfg.Kubernetes != nil {
		if kube, secParts, err = startKube(ctx, &cfg, st, log); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while waiting for the CA Secret
			}
			return err
		}
		defer kube.stop()
		sources, discovery = append(sources, kube.source), kube.source
	}
	sourceSet := newSourceSet(sources...)
	reg := registry.New()
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sec, err := newSecurity(cfg, metrics, log.With("component", "ca"), secParts)
	if err != nil {
		return fmt.Errorf("starting the CA: %w", err)
	}
	rl, err := newRateLimit(ctx, cfg.RateLimit, metrics, log.With("component", "ratelimit"))
	if err != nil {
		return err
	}
	defer rl.close()
	xds, err := xdsserver.New(xdsserver.Config{Registry: reg, Metrics: metrics, Logger: log.With("component", "xds")})
	if err != nil {
		return fmt.Errorf("starting xDS server: %w", err)
	}
	keySets := jwks.New(jwks.Config{Timeout: cfg.Authz.JWKSTimeout, Refresh: cfg.Authz.JWKSRefresh,
		AllowPrivate: cfg.Authz.JWKSAllowPrivate, Logger: log.With("component", "jwks")})
	tr, err := newTranslator(translatorConfig{
		store: st, source: sourceSet, discovery: discovery, registry: reg, xds: xds, metrics: metrics,
		logger: log.With("component", "translator"), debounce: cfg.DebounceAfter, maxDelay: MaxDebounce,
		trustBundle: sec.ca.TrustBundlePEM,
		warmup:      cfg.Warmup,
		buildOptions: append([]model.Option{model.WithTrustDomain(sec.ca.TrustDomain()), model.WithRootNamespace(cfg.RootNamespace)},
			append(cfg.Authz.buildOptions(), cfg.RateLimit.buildOption(lis.xds.Addr().String()))...),
		rateLimits: rl,
		jwks:       keySets,
	})
	if err != nil {
		return err
	}
	sec.onBundleChange = tr.trigger
	if kube != nil {
		if err := kube.ready(sec, st, tr); err != nil {
			return err
		}
	}

	var dash *dashboard.Dashboard
	if lis.dash != nil {
		dash, err = dashboard.New(dashboard.Config{Sidecars: reg, Tap: cfg.DashboardTap,
			ScrapeInterval: cfg.DashboardScrapeInterval, Limits: cfg.Limits, Logger: log.With("component", "dashboard")})
		if err != nil {
			return err
		}
		log.Info("dashboard", "url", "http://"+lis.dash.Addr().String()+"/", "tap", cfg.DashboardTap)
	}

	mux := monitoringHandler(metrics, tr)
	sec.register(mux)
	mon := cfg.Limits.Server(mux, log.With("component", "monitoring"))
	log.Info("control plane starting", "xds", lis.xds.Addr().String(), "secureXDS", lis.secure.Addr().String(),
		"monitoring", lis.mon.Addr().String(), "dataDir", cfg.DataDir, "trustDomain", sec.ca.TrustDomain(),
		"files", cfg.ConfigFiles)

	started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	// run starts a part; a part that fails stops the others.
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", name, err)
				}
				errMu.Unlock()
				cancel()
			}
		}()
	}
	if src != nil {
		run("file source", func() error { return src.Run(ctx) })
	}
	run("config sources", func() error { return sourceSet.run(ctx) })
	if kube != nil {
		run("kubernetes source", func() error { return kube.source.Run(ctx) })
		run("webhook server", func() error { return kube.serveWebhooks(ctx) })
		run("CA Secret watch", func() error { return kube.watchCA(ctx) })
	}
	grpcLimits := xdsserver.WithGRPCOptions(cfg.Limits.GRPCOptions()...)
	run("xDS server", func() error {
		return xds.Serve(ctx, cfg.Limits.ConnListener(lis.xds), append(sec.serveOptions(false), append(rl.serveOption(), grpcLimits)...)...)
	})
	run("secure xDS server", func() error {
		return xds.Serve(ctx, cfg.Limits.ConnListener(lis.secure), append(sec.serveOptions(true), grpcLimits)...)
	})
	run("translator", func() error { return tr.run(ctx) })
	run("JWT key sets", func() error { return keySets.Run(ctx) })
	run("monitoring server", func() error { return serveHTTP(ctx, mon, cfg.Limits.Listener(lis.mon)) })
	if dash != nil {
		run("dashboard", func() error { return dash.Serve(ctx, lis.dash) })
	}
	wg.Wait()
	log.Info("control plane stopped")
	return firstErr
}

// listeners are the control plane's listeners.
type listeners struct {
	xds, secure, mon net.Listener
	dash             net.Listener // nil: no dashboard
}

func (l *listeners) close() {
	for _, c := range []net.Listener{l.xds, l.secure, l.mon, l.dash} {
		if c != nil {
			c.Close()
		}
	}
}

// listen opens the xDS, secure xDS and monitoring listeners, unless the config
// carries them.
func listen(cfg Config) (*listeners, error) {
	l := &listeners{xds: cfg.XDSListener, secure: cfg.SecureXDSListener, mon: cfg.MonitoringListener, dash: cfg.DashboardListener}
	open := func(lis *net.Listener, addr, what string) error {
		if *lis != nil {
			return nil
		}
		var err error
		if *lis, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listening for %s: %w", what, err)
		}
		return nil
	}
	for _, e := range []error{
		open(&l.xds, cfg.XDSAddr, "xDS"),
		open(&l.secure, cfg.SecureXDSAddr, "secure xDS"),
		open(&l.mon, cfg.MonitoringAddr, "monitoring"),
		openDashboard(l, cfg.DashboardAddr),
	} {
		if e != nil {
			l.close()
			return nil, e
		}
	}
	return l, nil
}

// openDashboard opens the dashboard's listener when an address is configured.
func openDashboard(l *listeners, addr string) error {
	if l.dash != nil || addr == "" {
		return nil
	}
	var err error
	if l.dash, err = net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("listening for the dashboard: %w", err)
	}
	return nil
}

// serveHTTP serves srv on ln until ctx ends, then shuts it down, giving requests in
// flight up to 5 seconds.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	return err
}

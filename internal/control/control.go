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

	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/source/file"
	"trellis.dev/trellis/internal/store"
	"trellis.dev/trellis/internal/xdsserver"
)

// Defaults of Config.
const (
	DefaultXDSAddr        = "127.0.0.1:15010"
	DefaultMonitoringAddr = "127.0.0.1:15014"
	DefaultDebounceAfter  = 100 * time.Millisecond
	// MaxDebounce bounds how long a burst of changes may delay a translation.
	MaxDebounce = time.Second
)

// Config configures the control plane.
type Config struct {
	// ConfigFiles are the mesh files (multi-document YAML) to load and watch.
	ConfigFiles []string
	// XDSAddr is where plaintext xDS (ADS, SotW and Delta) is served. Default
	// 127.0.0.1:15010.
	XDSAddr string
	// MonitoringAddr is where /metrics, /ready and /debug/* are served. Default
	// 127.0.0.1:15014.
	MonitoringAddr string
	// DataDir is the control plane's state directory (created if missing); empty: none.
	DataDir string
	// Logger receives the component's logs. Default: slog.Default().
	Logger *slog.Logger
	// DebounceAfter is the quiet period after a change before translating. Default
	// 100ms.
	DebounceAfter time.Duration

	// XDSListener and MonitoringListener, if set, are used instead of listening on
	// XDSAddr and MonitoringAddr (tests pass listeners on port 0). Run closes them.
	XDSListener        net.Listener
	MonitoringListener net.Listener
}

func (c *Config) setDefaults() {
	if c.XDSAddr == "" {
		c.XDSAddr = DefaultXDSAddr
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
}

// Run runs the control plane until ctx ends, then stops gracefully and returns nil.
// It returns an error if it cannot start (a listener, the file source) or if a part
// fails while running.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	log := cfg.Logger
	if len(cfg.ConfigFiles) == 0 {
		return errors.New("starting control plane: no config files given")
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
	}

	xdsLis, monLis, err := listen(cfg)
	if err != nil {
		return err
	}
	started := false
	defer func() {
		if !started {
			xdsLis.Close()
			monLis.Close()
		}
	}()

	st := store.New()
	src, err := file.New(file.Config{Paths: cfg.ConfigFiles, Store: st, Logger: log.With("component", "file-source")})
	if err != nil {
		return fmt.Errorf("starting file source: %w", err)
	}
	reg := registry.New()
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	xds, err := xdsserver.New(xdsserver.Config{Registry: reg, Metrics: metrics, Logger: log.With("component", "xds")})
	if err != nil {
		return fmt.Errorf("starting xDS server: %w", err)
	}
	tr, err := newTranslator(translatorConfig{
		store: st, source: src, registry: reg, xds: xds, metrics: metrics,
		logger: log.With("component", "translator"), debounce: cfg.DebounceAfter, maxDelay: MaxDebounce,
	})
	if err != nil {
		return err
	}

	mon := &http.Server{Handler: monitoringHandler(metrics, tr), ReadHeaderTimeout: 10 * time.Second}
	log.Info("control plane starting", "xds", xdsLis.Addr().String(), "monitoring", monLis.Addr().String(),
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
	run("file source", func() error { return src.Run(ctx) })
	run("xDS server", func() error { return xds.Serve(ctx, xdsLis) })
	run("translator", func() error { return tr.run(ctx) })
	run("monitoring server", func() error {
		errc := make(chan error, 1)
		go func() { errc <- mon.Serve(monLis) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer scancel()
		err := mon.Shutdown(sctx)
		<-errc
		return err
	})
	wg.Wait()
	log.Info("control plane stopped")
	return firstErr
}

// listen opens the xDS and monitoring listeners, unless the config carries them.
func listen(cfg Config) (xdsLis, monLis net.Listener, err error) {
	xdsLis = cfg.XDSListener
	if xdsLis == nil {
		if xdsLis, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
			return nil, nil, fmt.Errorf("listening for xDS: %w", err)
		}
	}
	monLis = cfg.MonitoringListener
	if monLis == nil {
		if monLis, err = net.Listen("tcp", cfg.MonitoringAddr); err != nil {
			xdsLis.Close()
			return nil, nil, fmt.Errorf("listening for monitoring: %w", err)
		}
	}
	return xdsLis, monLis, nil
}

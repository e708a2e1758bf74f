package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"

	"trellis.dev/trellis/internal/proxy/admin"
	"trellis.dev/trellis/internal/proxy/appprobe"
	"trellis.dev/trellis/internal/proxy/telemetry"
)

// newTelemetry sets up the metrics, access log and tracing the bootstrap asks for,
// and binds the metrics address.
func (p *Proxy) newTelemetry() error {
	b := p.cfg.Bootstrap
	tc, accessLog, err := telemetry.FromBootstrap(b)
	if err != nil {
		return err
	}
	tc.Logger = p.cfg.Logger
	if p.telemetry, err = telemetry.New(context.Background(), tc); err != nil {
		if accessLog != nil {
			accessLog.Close()
		}
		return err
	}
	p.accessLog = accessLog
	if err := p.telemetry.Metrics().Registry().Register(p.pagesReleasedMetric()); err != nil {
		p.closeTelemetry(context.Background())
		return fmt.Errorf("telemetry: registering metrics: %w", err)
	}
	if b.Metrics != "" {
		var probes http.Handler
		if len(b.AppProbes) > 0 {
			probes = appprobe.Handler(b.AppProbes, p.cfg.Logger)
		}
		p.metricsSrv, err = telemetry.NewServer(telemetry.ServerConfig{
			Address:   b.Metrics,
			Gatherer:  p.telemetry.Metrics().Registry(),
			LabelSets: p.telemetry.Metrics().LabelSets,
			Ready:     p.Ready,
			AppProbes: probes,
			Limits:    p.cfg.Limits,
			Logger:    p.cfg.Logger,
		})
		if err != nil {
			p.closeTelemetry(context.Background())
			return fmt.Errorf("telemetry: %w", err)
		}
	}
	return nil
}

var _ admin.TapState = (*Proxy)(nil)

// ServeTap streams the sidecar's requests (the admin /tap endpoint).
func (p *Proxy) ServeTap(w http.ResponseWriter, r *http.Request) {
	p.telemetry.Tap().ServeHTTP(w, r)
}

// MetricsAddr returns the metrics server's address, or "" when there is none.
func (p *Proxy) MetricsAddr() string {
	if p.metricsSrv == nil {
		return ""
	}
	return p.metricsSrv.Addr()
}

// announcedMetrics is the metrics address as the control plane reaches it: a
// wildcard host (0.0.0.0:15020 in a pod) becomes the pod's IP, $POD_IP, when the
// injector set it.
func announcedMetrics(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if podIP := os.Getenv("POD_IP"); net.ParseIP(podIP) != nil {
			return net.JoinHostPort(podIP, port)
		}
	}
	return addr
}

// abandonTelemetry releases the telemetry of a sidecar that will never run.
func (p *Proxy) abandonTelemetry() {
	if p.metricsSrv != nil {
		p.metricsSrv.Close()
	}
	p.closeTelemetry(context.Background())
}

// closeTelemetry writes the access log lines and exports the spans still queued.
func (p *Proxy) closeTelemetry(ctx context.Context) {
	if err := p.telemetry.Close(ctx); err != nil {
		p.cfg.Logger.Warn("stopping telemetry", "error", err)
	}
	if p.accessLog != nil {
		p.accessLog.Close()
	}
}

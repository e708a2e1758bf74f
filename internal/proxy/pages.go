package proxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"trellis.dev/trellis/internal/proxy/binpages"
)

// readyPoll is how often releaseStartupPages checks whether the sidecar is ready.
const readyPoll = 100 * time.Millisecond

// releaseStartupPages starts the goroutine that, once the sidecar has been ready
// for cfg.ReleaseStartupPages, gives back the pages of the executable that start-up
// touched (package binpages) and records their size in p.pagesReleased. It does
// nothing when cfg.ReleaseStartupPages is zero. The returned function waits for the
// goroutine, which ends with ctx.
func (p *Proxy) releaseStartupPages(ctx context.Context, log *slog.Logger) (wait func()) {
	after := p.cfg.ReleaseStartupPages
	if after <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(readyPoll)
		defer tick.Stop()
		for !p.Ready() {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(after):
		}
		r, err := binpages.Release()
		p.pagesReleased.Store(r.Bytes)
		if err != nil {
			log.Warn("releasing the executable's start-up pages", "error", err, "released", r.Bytes)
			return
		}
		log.Info("released the executable's start-up pages", "bytes", r.Bytes, "mappings", r.Mappings)
	}()
	return func() { <-done }
}

// pagesReleasedMetric reports what releaseStartupPages gave back.
func (p *Proxy) pagesReleasedMetric() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "trellis_startup_pages_released_bytes",
		Help: "Resident pages of the trellis executable's code and read-only data that the sidecar gave back after start-up (0 before, or when --release-startup-pages is 0).",
	}, func() float64 { return float64(p.pagesReleased.Load()) })
}

package xdsload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"trellis.dev/trellis/bench/internal/child"
	"trellis.dev/trellis/bench/procstat"
)

// The kinds of change.
const (
	// KindService adds a Service to the mesh file.
	KindService = "service"
	// KindEndpoint connects one more proxy to an existing service.
	KindEndpoint = "endpoint"
)

// Run measures the control plane once per entry of cfg.Proxies and returns the
// report. A run that fails is reported with its error; Run fails only on a bad Config
// or when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Services: cfg.Services, Namespaces: cfg.Namespaces, ConnectRate: cfg.ConnectRate, Quiet: cfg.Quiet.String()}
	for _, scoping := range cfg.Scopings {
		for _, n := range cfg.Proxies {
			if scoping == ScopingNone && cfg.MaxUnscoped > 0 && n > cfg.MaxUnscoped {
				rep.Notes = append(rep.Notes, fmt.Sprintf("The unscoped run of %d proxies was skipped (-unscoped-max %d).", n, cfg.MaxUnscoped))
				continue
			}
			cfg.Logger.Info("control-plane load run", "proxies", n, "services", cfg.Services, "scoping", scoping)
			r := runOnce(ctx, cfg, n, scoping)
			r.LoadAverage[1] = loadAverage()
			if r.Error != "" {
				cfg.Logger.Warn("control-plane load run failed", "proxies", n, "scoping", scoping, "error", r.Error)
			}
			rep.Runs = append(rep.Runs, r)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	rep.Finished = time.Now()
	return rep, nil
}

// session is one run: a control plane, its proxies and their goroutines.
type session struct {
	cfg     Config
	dir     string
	mesh    string
	spec    meshSpec
	xds     string
	metrics string // the control plane's /metrics URL
	cp      *child.Child
	fleet   *fleet
	ctx     context.Context
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup
	proxies int // proxies started so far (ids 0..proxies-1)
	ramped  int // proxies of the ramp

	peakMu  sync.Mutex
	peakRSS uint64
}

func runOnce(ctx context.Context, cfg Config, n int, scoping string) RunResult {
	res := RunResult{Proxies: n, Services: cfg.Services, Scoping: scoping}
	res.LoadAverage[0] = loadAverage()
	s, err := startSession(ctx, cfg, n, scoping)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	selfBefore, _ := procstat.CPU(os.Getpid())
	defer s.stop()

	if err := s.ramp(n, &res.Ramp); err != nil {
		res.Error = err.Error()
	}
	for i := 0; res.Error == "" && i < 2*cfg.Changes; i++ {
		kind := KindService
		if i%2 == 1 {
			kind = KindEndpoint
		}
		ch, err := s.change(i, kind)
		if err != nil {
			res.Error = err.Error()
			break
		}
		res.Changes = append(res.Changes, ch)
	}
	res.summarize()
	if failures, err := s.fleet.streamFailures(); failures > 0 {
		res.StreamFailures = failures
		res.Error = errors.Join(errorOrNil(res.Error), fmt.Errorf("%d streams failed, the first: %w", failures, err)).Error()
	}
	if m, err := procstat.Mem(s.cp.PID()); err == nil {
		res.ControlPlane.RSSMiB = mib(m.RSS)
		s.notePeak(m.Peak)
	}
	res.ControlPlane.PeakRSSMiB = mib(s.peak())
	if cpu, err := procstat.CPU(s.cp.PID()); err == nil {
		res.ControlPlane.CPUSeconds = cpu.Seconds()
	}
	if self, err := procstat.CPU(os.Getpid()); err == nil {
		res.LoadGeneratorCPUSeconds = (self - selfBefore).Seconds()
	}
	if m, err := procstat.Mem(os.Getpid()); err == nil {
		res.LoadGeneratorPeakRSSMiB = mib(m.Peak)
	}
	if cause := context.Cause(s.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		res.Error = errors.Join(errorOrNil(res.Error), cause).Error()
	}
	return res
}

func errorOrNil(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

func startSession(ctx context.Context, cfg Config, n int, scoping string) (*session, error) {
	dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("proxies-%d-%s", n, scoping))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the work directory: %w", err)
	}
	s := &session{cfg: cfg, dir: dir, mesh: filepath.Join(dir, "mesh.yaml"), fleet: &fleet{},
		spec: meshSpec{services: cfg.Services, namespaces: cfg.Namespaces, scoping: scoping}}
	if err := writeMesh(s.mesh, s.spec.file()); err != nil {
		return nil, err
	}
	ports, err := child.FreePorts(3)
	if err != nil {
		return nil, err
	}
	s.xds = child.Loopback(ports[0])
	mon := child.Loopback(ports[1])
	s.metrics = "http://" + mon + "/metrics"
	argv := []string{cfg.Trellis, "control", "-f", s.mesh, "--xds-addr", s.xds, "--monitoring-addr", mon,
		"--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}
	// A control plane that also serves xDS over TLS must not take the default port,
	// which another control plane on the machine may hold.
	if child.HasFlag(cfg.Trellis, "control", "--secure-xds-addr") {
		argv = append(argv, "--secure-xds-addr", child.Loopback(ports[2]))
	}
	// The simulated proxies carry no join token: they measure serving xDS, not
	// authenticating it.
	if child.HasFlag(cfg.Trellis, "control", "--xds-allow-unauthenticated") {
		argv = append(argv, "--xds-allow-unauthenticated")
	}
	s.cp, err = child.Start("trellis control", filepath.Join(dir, "control.log"), argv, nil)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s.cp, "http://"+mon+"/ready"); err != nil {
		s.cp.Stop(5 * time.Second)
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.wg.Go(s.sample)
	return s, nil
}

// waitReady polls the control plane's /ready until it answers 200.
func waitReady(ctx context.Context, cp *child.Child, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := cp.Exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the control plane to be ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// sample reads the control plane's memory every 250ms, keeps its peak, and stops the
// run when it grows beyond Config.MaxControlRSS.
func (s *session) sample() {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		m, err := procstat.Mem(s.cp.PID())
		if err != nil {
			s.cancel(fmt.Errorf("the control plane is gone: %w", err))
			return
		}
		s.notePeak(m.Peak)
		if m.RSS > s.cfg.MaxControlRSS {
			s.cancel(fmt.Errorf("stopped: the control plane's RSS reached %.0f MiB, above the limit of %.0f MiB", mib(m.RSS), mib(s.cfg.MaxControlRSS)))
			return
		}
	}
}

func (s *session) notePeak(v uint64) {
	s.peakMu.Lock()
	defer s.peakMu.Unlock()
	s.peakRSS = max(s.peakRSS, v)
}

func (s *session) peak() uint64 {
	s.peakMu.Lock()
	defer s.peakMu.Unlock()
	return s.peakRSS
}

// stop ends the proxies, the sampler and the control plane.
func (s *session) stop() {
	s.cancel(context.Canceled)
	s.wg.Wait()
	s.cp.Stop(30 * time.Second)
}

// host is the unique inbound host of proxy id: 127.10.x.y for the ramp's proxies,
// 127.201.1xx.1yy (fixed width, so that one is never a prefix of another) for the
// proxies that join later.
func host(id, ramp int) string {
	if id < ramp {
		return fmt.Sprintf("127.10.%d.%d", id/250, id%250+1)
	}
	k := id - ramp
	return fmt.Sprintf("127.201.%d.%d", 100+k/100, 100+k%100)
}

// startProxy starts proxy id, a workload of service i; started is called once its
// first request is sent.
func (s *session) startProxy(id, service int, host string, started func()) error {
	p, err := newSimProxy(id, fmt.Sprintf("sim-%05d", id), serviceName(service),
		namespaceOf(service, s.cfg.Namespaces), host, s.fleet)
	if err != nil {
		return err
	}
	s.proxies++
	s.wg.Go(func() {
		if err := p.run(s.ctx, s.xds, started); err != nil {
			s.fleet.fail(err)
		}
	})
	return nil
}

// ramp connects n proxies at the configured rate, then waits until every proxy has
// its configuration and the control plane has been quiet for Config.Quiet.
func (s *session) ramp(n int, r *Ramp) error {
	s.ramped = n
	cpuBefore, _ := procstat.CPU(s.cp.PID())
	start := time.Now()
	interval := time.Second / time.Duration(s.cfg.ConnectRate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for id := range n {
		if err := s.startProxy(id, id%s.cfg.Services, host(id, n), nil); err != nil {
			return err
		}
		select {
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		case <-tick.C:
		}
	}
	r.ConnectSeconds = time.Since(start).Seconds()
	defer func() {
		r.Configured = int(s.fleet.configured.Load())
		r.ConfiguredSeconds = time.Unix(0, s.fleet.lastRecv.Load()).Sub(start).Seconds()
		r.Bytes = s.fleet.bytes.Load()
		r.Responses = s.fleet.responses.Load()
		cpuAfter, _ := procstat.CPU(s.cp.PID())
		r.ControlPlaneCPUSeconds = (cpuAfter - cpuBefore).Seconds()
		if m, err := procstat.Mem(s.cp.PID()); err == nil {
			r.ControlPlaneRSSMiB = mib(m.RSS)
		}
	}()
	deadline := time.Now().Add(s.cfg.ChangeTimeout)
	if err := s.poll(deadline, func() bool { return s.fleet.configured.Load() >= int64(n) }); err != nil {
		return fmt.Errorf("ramp: %d of %d proxies configured: %w", s.fleet.configured.Load(), n, err)
	}
	if err := s.waitQuiet(deadline); err != nil {
		return fmt.Errorf("ramp: %w", err)
	}
	return nil
}

// change makes change i of the kind and waits until every proxy has ACKed it and the
// control plane is quiet again.
func (s *session) change(i int, kind string) (Change, error) {
	ch := Change{Kind: kind, Index: i}
	want := map[int]bool{}
	for id := range s.proxies {
		want[id] = true
	}
	bytesBefore, respBefore := s.fleet.bytes.Load(), s.fleet.responses.Load()
	cpuBefore, _ := procstat.CPU(s.cp.PID())
	metricsBefore, _ := scrape(s.metrics)
	var c *change
	switch kind {
	case KindService:
		name := changeName(i)
		// The FQDN prefix: every resource of the service carries it, and no other
		// change's name starts with it.
		c = newChange(kind, name+"."+sharedNamespace, []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.RouteType}, want)
		s.spec.changes = append(s.spec.changes, name)
		s.fleet.current.Store(c)
		c.start = time.Now()
		if err := writeMesh(s.mesh, s.spec.file()); err != nil {
			return ch, err
		}
	case KindEndpoint:
		id := s.proxies
		h := host(id, s.ramped)
		c = newChange(kind, h, []string{resourcev3.EndpointType}, want)
		s.fleet.current.Store(c)
		c.start = time.Now()
		if err := s.startProxy(id, 0, h, nil); err != nil {
			return ch, err
		}
	}
	defer s.fleet.current.Store(nil)
	deadline := time.Now().Add(s.cfg.ChangeTimeout)
	select {
	case <-c.done:
	case <-s.ctx.Done():
	case <-time.After(s.cfg.ChangeTimeout):
	}
	lat := c.latencies()
	ch.Proxies, ch.Acked = len(want), len(lat)
	ch.P50Ms, ch.P99Ms, ch.MaxMs = percentileMs(lat, 50), percentileMs(lat, 99), percentileMs(lat, 100)
	if err := s.waitQuiet(deadline.Add(s.cfg.Quiet * 2)); err != nil {
		ch.Note = err.Error()
	}
	ch.Bytes = s.fleet.bytes.Load() - bytesBefore
	ch.Responses = s.fleet.responses.Load() - respBefore
	cpuAfter, _ := procstat.CPU(s.cp.PID())
	ch.ControlPlaneCPUSeconds = (cpuAfter - cpuBefore).Seconds()
	if m, err := procstat.Mem(s.cp.PID()); err == nil {
		ch.ControlPlaneRSSMiB = mib(m.RSS)
	}
	if m, err := scrape(s.metrics); err == nil {
		ch.Translations, ch.TranslateMs, ch.PushMs = m.since(metricsBefore)
	}
	if ch.Acked < ch.Proxies {
		return ch, fmt.Errorf("change %d (%s): %d of %d proxies ACKed it within %s", i, kind, ch.Acked, ch.Proxies, s.cfg.ChangeTimeout)
	}
	return ch, context.Cause(s.ctx)
}

// poll waits until cond holds, the deadline passes or the run stops.
func (s *session) poll(deadline time.Time, cond func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-s.ctx.Done():
			return context.Cause(s.ctx)
		case <-tick.C:
		}
	}
	return nil
}

// waitQuiet waits until no response has arrived for Config.Quiet.
func (s *session) waitQuiet(deadline time.Time) error {
	err := s.poll(deadline, func() bool {
		return time.Since(time.Unix(0, s.fleet.lastRecv.Load())) >= s.cfg.Quiet
	})
	if err != nil {
		return fmt.Errorf("waiting for the control plane to be quiet for %s: %w", s.cfg.Quiet, err)
	}
	return nil
}

// percentileMs is the p-th percentile (nearest rank) of ds in milliseconds.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.999999) - 1
	i = min(max(i, 0), len(ds)-1)
	return float64(ds[i]) / float64(time.Millisecond)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

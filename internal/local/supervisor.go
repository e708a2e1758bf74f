package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/ca/casvc"
	"trellis.dev/trellis/internal/config"
)

// supervisor owns the running mesh. Its mutex guards runs; apply, reload and
// shutdown are called from one goroutine at a time (Run's, then the watcher's, then
// Run's again), so they never race with each other.
type supervisor struct {
	cfg        Config
	absFiles   []string // cfg.Files, absolute, for the control plane
	ports      *allocator
	xds        string
	secureXDS  string
	monitoring string
	dashboard  string
	procOpts   procOptions
	control    *proc
	changed    chan struct{} // buffered 1: the state may have changed

	mu   sync.Mutex
	runs map[string]*workloadRun // by namespace/name
}

// notify tells the state loop that something changed. It never blocks.
func (s *supervisor) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *supervisor) controlSpec() procSpec {
	argv := []string{s.cfg.Binary, "control"}
	for _, f := range s.absFiles {
		argv = append(argv, "-f", f)
	}
	argv = append(argv,
		"--xds-addr", s.xds,
		"--secure-xds-addr", s.secureXDS,
		"--monitoring-addr", s.monitoring,
		// The sidecars' admin addresses are on this host: the dashboard can tap them.
		"--dashboard-addr", s.dashboard, "--dashboard-tap",
		"--data-dir", s.controlDir(),
		"--log-level", s.cfg.LogLevel,
	)
	if s.cfg.TrustDomain != "" {
		argv = append(argv, "--trust-domain", s.cfg.TrustDomain)
	}
	if s.cfg.RootNamespace != "" {
		argv = append(argv, "--root-namespace", s.cfg.RootNamespace)
	}
	if s.cfg.CertTTL > 0 {
		argv = append(argv, "--cert-ttl", s.cfg.CertTTL.String())
	}
	argv = append(argv, s.cfg.ControlArgs...)
	return procSpec{Name: "control", Argv: argv, Grace: 5 * time.Second}
}

// controlDir is the control plane's data directory.
func (s *supervisor) controlDir() string { return filepath.Join(s.cfg.DataDir, "control") }

// tokenFile is the join token the control plane writes; the sidecars read it.
func (s *supervisor) tokenFile() string {
	return filepath.Join(s.controlDir(), casvc.JoinTokenFile)
}

// bundleFile is the trust bundle the control plane writes; the sidecars verify the
// control plane with it.
func (s *supervisor) bundleFile() string { return ca.TrustBundleFile(s.controlDir()) }

// reload re-reads the files and applies them; an invalid edit is logged, one record
// per problem, and the running mesh stays as it is.
func (s *supervisor) reload() {
	set, err := config.LoadFiles(s.cfg.Files)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				s.cfg.Logger.Warn("invalid mesh file; keeping the running mesh", "error", e.Error())
			}
			return
		}
		s.cfg.Logger.Warn("invalid mesh file; keeping the running mesh", "error", err)
		return
	}
	s.cfg.Logger.Info("mesh files changed; applying")
	s.apply(set)
}

// apply makes the running workloads match set: it stops removed workloads, restarts
// changed ones and starts new ones.
func (s *supervisor) apply(set *config.Set) {
	want := map[string]config.Workload{}
	for _, w := range set.Workloads {
		want[workloadKey(w.Workload)] = w
		reserveFixed(s.ports, w.Workload)
	}
	s.mu.Lock()
	var stop []*workloadRun
	for key, r := range s.runs {
		if w, ok := want[key]; !ok || digest(w.Workload) != r.plan.Digest {
			stop = append(stop, r)
			delete(s.runs, key)
		}
	}
	s.mu.Unlock()

	prev := map[string]*addrs{}
	for _, r := range stop {
		prev[r.plan.Key] = r.plan.Addrs
	}
	stopRuns(stop)
	for _, r := range stop {
		if _, ok := want[r.plan.Key]; !ok {
			s.cfg.Logger.Info("workload removed", "workload", r.plan.Key)
			os.Remove(r.plan.BootstrapPath)
		}
	}

	for _, w := range set.Workloads {
		key := workloadKey(w.Workload)
		s.mu.Lock()
		_, running := s.runs[key]
		s.mu.Unlock()
		if running {
			continue
		}
		if err := s.start(w, prev[key]); err != nil {
			s.cfg.Logger.Error("cannot start workload", "workload", key, "error", err)
		}
	}
	s.notify()
}

// start runs one workload: its sidecar, then its app.
func (s *supervisor) start(w config.Workload, prev *addrs) error {
	xds, caFile := s.secureXDS, s.bundleFile()
	if s.cfg.PlaintextXDS {
		xds, caFile = s.xds, ""
	}
	pl, err := newPlan(w, planInput{
		XDS: xds,
		Security: bootstrapSecurity{
			XDSCAFile:      caFile,
			TokenFile:      s.tokenFile(),
			TrustDomain:    s.cfg.TrustDomain,
			CertTTL:        s.cfg.CertTTL,
			CertRenewEvery: s.cfg.CertRenewEvery,
		},
		Delta:     s.cfg.Delta,
		AccessLog: s.cfg.AccessLog,
		DataDir:   s.cfg.DataDir,
		Binary:    s.cfg.Binary,
		BaseEnv:   os.Environ(),
		Ports:     s.ports,
		Prev:      prev,
	})
	if err != nil {
		return err
	}
	if err := pl.writeBootstrap(); err != nil {
		return err
	}
	r := startWorkload(pl, s.workloadOptions())
	s.mu.Lock()
	s.runs[pl.Key] = r
	s.mu.Unlock()
	if prev != nil {
		s.cfg.Logger.Info("workload restarted", "workload", pl.Key)
	} else {
		s.cfg.Logger.Info("workload started", "workload", pl.Key, "outbound", pl.Addrs.Outbound, "admin", pl.Addrs.Admin)
	}
	return nil
}

func (s *supervisor) workloadOptions() workloadOptions {
	return workloadOptions{
		Binary:   s.cfg.Binary,
		AppGrace: s.cfg.AppGrace,
		Proc:     s.procOpts,
		OnChange: s.notify,
	}
}

// shutdown stops every app, then every sidecar, then the control plane.
func (s *supervisor) shutdown() {
	s.mu.Lock()
	runs := make([]*workloadRun, 0, len(s.runs))
	for _, r := range s.runs {
		runs = append(runs, r)
	}
	s.runs = map[string]*workloadRun{}
	s.mu.Unlock()
	stopRuns(runs)
	s.control.Stop()
}

// stopRuns stops the apps of runs, then their sidecars, each phase in parallel.
func stopRuns(runs []*workloadRun) {
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(r.stopApp)
	}
	wg.Wait()
	for _, r := range runs {
		wg.Go(r.stopProxy)
	}
	wg.Wait()
}

// newSupervisor chooses the control plane's addresses and prepares the supervisor.
func newSupervisor(cfg Config, absFiles []string) (*supervisor, error) {
	ports := newAllocator()
	xds, err := resolveAddr(cfg.XDSAddr, ports)
	if err != nil {
		return nil, fmt.Errorf("choosing the xDS address: %w", err)
	}
	secureAddr := cfg.SecureXDSAddr
	if secureAddr == "" && !picksPort(cfg.XDSAddr) {
		secureAddr = DefaultSecureXDSAddr
	}
	secureXDS, err := resolveAddr(secureAddr, ports)
	if err != nil {
		return nil, fmt.Errorf("choosing the secure xDS address: %w", err)
	}
	monitoring, err := ports.reuseOrPick("")
	if err != nil {
		return nil, fmt.Errorf("choosing the monitoring address: %w", err)
	}
	dashAddr := cfg.DashboardAddr
	if dashAddr == "" && !picksPort(cfg.XDSAddr) {
		dashAddr = DefaultDashboardAddr
	}
	dashboard, err := resolveAddr(dashAddr, ports)
	if err != nil {
		return nil, fmt.Errorf("choosing the dashboard address: %w", err)
	}
	s := &supervisor{
		cfg:        cfg,
		absFiles:   absFiles,
		ports:      ports,
		xds:        xds,
		secureXDS:  secureXDS,
		monitoring: monitoring,
		dashboard:  dashboard,
		runs:       map[string]*workloadRun{},
		changed:    make(chan struct{}, 1),
		procOpts: procOptions{
			Logger: cfg.Logger,
			Stdout: &lockedWriter{w: cfg.Stdout},
			Stderr: &lockedWriter{w: cfg.Stderr},
		},
	}
	s.procOpts.OnChange = s.notify
	return s, nil
}

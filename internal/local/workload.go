package local

import (
	"context"
	"sync"
	"syscall"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
)

// appHold is how long an app waits for its sidecar to be ready before it starts
// anyway: as with Istio's holdApplicationUntilProxyStarts, the app's first calls
// then find a configured sidecar.
const appHold = 15 * time.Second

// workloadOptions are the parts of a workload's processes shared by all workloads.
type workloadOptions struct {
	Binary   string
	AppGrace time.Duration
	Proc     procOptions
	OnChange func()
}

// workloadRun is one running workload: its sidecar and, once the sidecar is ready,
// its app. Its starter goroutine is owned by the run and ends in stopApp.
type workloadRun struct {
	plan        *plan
	proxy       *proc
	cancelStart context.CancelFunc
	started     chan struct{} // closed when the starter goroutine is done

	mu       sync.Mutex
	launched bool  // the app was started (or there is none)
	app      *proc // nil when the workload has no command
}

func startWorkload(pl *plan, opts workloadOptions) *workloadRun {
	name := pl.Workload.Name
	drain := pl.Bootstrap.DrainPeriod.Std()
	if drain <= 0 {
		drain = bootstrap.DefaultDrainPeriod
	}
	sidecar := startProc(procSpec{
		Name: name + "/proxy",
		Argv: []string{opts.Binary, "proxy", "--bootstrap", pl.BootstrapPath},
		// up stops a sidecar only after its app, when nothing is left to drain for:
		// SIGINT skips the drain period. Requests in flight still get it to finish
		// (the drain period itself applies to a SIGTERM from outside, docs/proxy.md).
		StopSignal: syscall.SIGINT,
		// The sidecar stops by itself once drained; give it some slack beyond that.
		Grace: drain + 5*time.Second,
	}, opts.Proc)
	ctx, cancel := context.WithCancel(context.Background())
	r := &workloadRun{plan: pl, proxy: sidecar, cancelStart: cancel, started: make(chan struct{})}
	go func() {
		defer close(r.started)
		if !waitReady(ctx, pl.Addrs.Admin, appHold) {
			if ctx.Err() != nil {
				return
			}
			opts.Proc.Logger.Warn("sidecar not ready; starting the app anyway", "workload", pl.Key, "waited", appHold)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.launched = true
		if pl.AppArgv != nil {
			r.app = startProc(procSpec{Name: name, Argv: pl.AppArgv, Env: pl.AppEnv, Grace: opts.AppGrace}, opts.Proc)
		}
		opts.OnChange()
	}()
	return r
}

// pids returns the sidecar's and the app's process ids (0 when not running), and
// whether the app was launched yet.
func (r *workloadRun) pids() (proxy, app int, launched bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.app != nil {
		app = r.app.PID()
	}
	return r.proxy.PID(), app, r.launched
}

// stopApp stops the app (or keeps it from starting).
func (r *workloadRun) stopApp() {
	r.cancelStart()
	<-r.started
	r.mu.Lock()
	app := r.app
	r.mu.Unlock()
	if app != nil {
		app.Stop()
	}
}

// stopProxy stops the sidecar; call it after stopApp.
func (r *workloadRun) stopProxy() {
	r.proxy.Stop()
}

// waitReady polls the sidecar's /ready until it answers 200, ctx is done or timeout
// passes. It reports whether the sidecar became ready.
func waitReady(ctx context.Context, admin string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if proxyReady(ctx, admin) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

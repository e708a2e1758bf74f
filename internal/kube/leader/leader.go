package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Defaults of Config, as Kubernetes' own controllers use.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Config configures an Elector.
type Config struct {
	// Client reaches the API server; required.
	Client kubernetes.Interface
	// Namespace and Name of the Lease; required.
	Namespace, Name string
	// Identity names this replica in the Lease (its pod name); required and unique.
	Identity string
	// LeaseDuration is how long others wait, after the last renewal, before taking
	// over from a leader that went silent. Default 15s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader retries renewing before giving up the
	// lead. Default 10s; less than LeaseDuration.
	RenewDeadline time.Duration
	// RetryPeriod is the interval between attempts. Default 2s.
	RetryPeriod time.Duration
	// Lead runs the leader's duties; its context ends when the lead is lost. Required.
	Lead func(ctx context.Context)
	// Logger receives leadership changes; default slog.Default().
	Logger *slog.Logger
}

// Elector campaigns for the Lease.
type Elector struct {
	cfg     Config
	leading atomic.Bool
	leader  atomic.Pointer[string]
}

// New returns an Elector; call Run.
func New(cfg Config) (*Elector, error) {
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Name == "" || cfg.Identity == "" || cfg.Lead == nil {
		return nil, errors.New("leader election: Client, Namespace, Name, Identity and Lead are required")
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline <= 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod <= 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Elector{cfg: cfg}, nil
}

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Leader is the identity of the leader last observed; empty if none yet.
func (e *Elector) Leader() string {
	if p := e.leader.Load(); p != nil {
		return *p
	}
	return ""
}

// Identity is this replica's identity.
func (e *Elector) Identity() string { return e.cfg.Identity }

// Run campaigns for the Lease until ctx ends, running Lead during every term won. It
// releases the Lease when ctx ends and returns nil; it returns an error only if the
// election cannot be set up.
func (e *Elector) Run(ctx context.Context) error {
	log := e.cfg.Logger
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, e.cfg.Namespace, e.cfg.Name,
		e.cfg.Client.CoreV1(), e.cfg.Client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: e.cfg.Identity})
	if err != nil {
		return fmt.Errorf("setting up leader election: %w", err)
	}
	// The terms won, handed to the goroutine that runs Lead.
	terms := make(chan context.Context)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case term := <-terms:
				log.Info("leading", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
				e.cfg.Lead(term)
			}
		}
	}()
	defer wg.Wait()

	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.cfg.LeaseDuration,
		RenewDeadline:   e.cfg.RenewDeadline,
		RetryPeriod:     e.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(term context.Context) {
				e.leading.Store(true)
				select {
				case terms <- term:
				case <-term.Done():
				}
			},
			OnStoppedLeading: func() {
				if e.leading.Swap(false) {
					log.Info("stopped leading", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
				}
			},
			OnNewLeader: func(id string) {
				e.leader.Store(&id)
				if id != e.cfg.Identity {
					log.Info("new leader", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("setting up leader election: %w", err)
	}
	// client-go logs through klog's context logger: route it to our slog handler.
	lctx := klog.NewContext(ctx, logr.FromSlogHandler(log.With("component", "leader-election").Handler()))
	for ctx.Err() == nil {
		elector.Run(lctx) // returns when the lead is lost or ctx ends
	}
	return nil
}

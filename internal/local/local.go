package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"trellis.dev/trellis/internal/config"
)

// DefaultSecureXDSAddr is the control plane's TLS address when XDSAddr is fixed and
// SecureXDSAddr empty.
const DefaultSecureXDSAddr = "127.0.0.1:15012"

// DefaultDashboardAddr is the control plane's dashboard address when XDSAddr is
// fixed and DashboardAddr empty.
const DefaultDashboardAddr = "127.0.0.1:15080"

// Config configures `trellis up`.
type Config struct {
	// Files are the mesh files: Workloads, Services and every other kind the control
	// plane reads. They are watched, and re-applied when they change.
	Files []string
	// StatePath, when set, is where the state JSON (see State) is written once every
	// sidecar is ready, and rewritten when something changes. It is removed on exit.
	StatePath string
	// XDSAddr is the control plane's plaintext xDS address. Empty or port 0: a free
	// port on 127.0.0.1 (or on the given host).
	XDSAddr string
	// SecureXDSAddr is the control plane's TLS xDS and CA address, which the sidecars
	// use. Port 0: a free port on 127.0.0.1 (or on the given host). Empty: a free port
	// when XDSAddr picks one too (empty or port 0), else DefaultSecureXDSAddr.
	SecureXDSAddr string
	// DashboardAddr is the control plane's dashboard (web UI and JSON API). Port 0: a
	// free port. Empty: a free port when XDSAddr picks one, else DefaultDashboardAddr.
	DashboardAddr string
	// PlaintextXDS makes the sidecars use XDSAddr (plaintext) instead of
	// SecureXDSAddr. They still get certificates, over the plaintext connection.
	PlaintextXDS bool
	// TrustDomain is the mesh's trust domain. Default cluster.local.
	TrustDomain string
	// RootNamespace holds the mesh-wide PeerAuthentication. Default trellis-system.
	RootNamespace string
	// CertTTL is the lifetime of workload certificates. Default: the control plane's
	// (24h).
	CertTTL time.Duration
	// CertRenewEvery, a test setting, makes the sidecars renew their certificates this
	// often instead of at half their lifetime.
	CertRenewEvery time.Duration
	// Delta makes the sidecars use the incremental (Delta) xDS protocol.
	Delta bool
	// AccessLog is where the sidecars write their JSON access logs: "-" (their
	// standard output, shown prefixed with [<workload>/proxy]), a file path (shared by
	// every sidecar), or "off". Default "-".
	AccessLog string
	// DataDir holds the control plane's data and the sidecars' bootstrap files.
	// Empty: a temporary directory, removed on exit.
	DataDir string
	// Binary is the trellis executable to run as `trellis control` and `trellis proxy`.
	// Empty: the running executable.
	Binary string
	// LogLevel is the control plane's log level. Default "info".
	LogLevel string
	// AppGrace is how long an app has to exit after SIGTERM. Default 5s.
	AppGrace time.Duration
	// ReadyTimeout is how long to wait for the sidecars to be ready before warning
	// about the ones that are not. Default 60s.
	ReadyTimeout time.Duration
	// ControlArgs are more flags for `trellis control` (authorization: --ext-authz,
	// --path-normalization, --jwks-allow-private).
	ControlArgs []string
	// OnState, if set, is called with the state each time it is (re)written.
	OnState func(State)
	// Logger receives up's own records. Default: discard.
	Logger *slog.Logger
	// Stdout and Stderr receive the children's output, each line prefixed with
	// [<workload>], [<workload>/proxy] or [control]. Default: os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
}

func (c *Config) setDefaults() error {
	if len(c.Files) == 0 {
		return errors.New("no mesh files: pass at least one -f FILE")
	}
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the trellis executable: %w", err)
		}
		c.Binary = exe
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.AccessLog == "" {
		c.AccessLog = "-"
	}
	if c.AppGrace <= 0 {
		c.AppGrace = 5 * time.Second
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	return nil
}

// Run runs the mesh described by cfg.Files until ctx is done: the control plane, a
// sidecar per Workload and each Workload's app. It then stops the apps, the sidecars
// and the control plane, in that order, and returns. An invalid file at start is an
// error naming the file and line; later invalid edits are logged and ignored.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	absFiles := make([]string, len(cfg.Files))
	for i, f := range cfg.Files {
		var err error
		if absFiles[i], err = filepath.Abs(f); err != nil {
			return fmt.Errorf("resolving %s: %w", f, err)
		}
	}
	// Watch before loading, so that no edit falls between the two.
	watcher, err := newFileWatcher(absFiles, cfg.Logger)
	if err != nil {
		return err
	}
	defer watcher.close()
	set, err := config.LoadFiles(cfg.Files)
	if err != nil {
		return fmt.Errorf("loading mesh files: %w", err)
	}
	cleanup, err := prepareFiles(&cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	s, err := newSupervisor(cfg, absFiles)
	if err != nil {
		return err
	}
	s.control = startProc(s.controlSpec(), s.procOpts)
	cfg.Logger.Info("starting control plane", "xds", s.xds, "secureXDS", s.secureXDS, "monitoring", s.monitoring,
		"dashboard", "http://"+s.dashboard+"/")
	// The sidecars read the join token and the trust bundle at start.
	if err := waitForFiles(ctx, controlStartTimeout, s.tokenFile(), s.bundleFile()); err != nil {
		cfg.Logger.Warn("the control plane has not written its join token and trust bundle; starting the sidecars anyway", "error", err)
	}
	s.apply(set)

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.stateLoop(bg) })
	wg.Go(func() { watcher.run(bg, s.reload) })

	<-ctx.Done()
	cfg.Logger.Info("stopping the mesh")
	stopBG()
	wg.Wait()
	s.shutdown()
	return nil
}

// prepareFiles creates the data directory (a temporary one when cfg.DataDir is
// empty) and removes an old state file. The returned func removes what Run owns: the
// temporary directory and the state file.
func prepareFiles(cfg *Config) (cleanup func(), err error) {
	var owned []string
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "trellis-up-")
		if err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
		cfg.DataDir = dir
		owned = append(owned, dir)
	} else if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if cfg.StatePath != "" {
		if err := os.Remove(cfg.StatePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing old state file: %w", err)
		}
		owned = append(owned, cfg.StatePath)
	}
	return func() {
		for _, p := range owned {
			os.RemoveAll(p)
		}
	}, nil
}

// picksPort reports whether resolveAddr chooses the port of addr: empty, or port 0.
func picksPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return addr == "" || (err == nil && port == "0")
}

// resolveAddr returns addr, or addr's host with a free port when addr is empty or
// names port 0.
func resolveAddr(addr string, ports *allocator) (string, error) {
	if addr == "" {
		return ports.reuseOrPick("")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		if n, err := strconv.Atoi(port); err == nil {
			ports.reserve(n)
		}
		return addr, nil
	}
	n, err := ports.pick()
	if err != nil {
		return "", err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// controlStartTimeout bounds the wait for the control plane's CA files.
const controlStartTimeout = 15 * time.Second

// waitForFiles polls until every path exists, ctx ends or timeout passes.
func waitForFiles(ctx context.Context, timeout time.Duration, paths ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := ""
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				missing = p
				break
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not exist after %v", missing, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

package xdsload

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Config configures a control-plane load run.
type Config struct {
	// Trellis is the trellis binary whose `trellis control` is measured. Required.
	Trellis string
	// Proxies are the numbers of simulated proxies, one run each, with a fresh
	// control plane. Default 1000 and 5000.
	Proxies []int
	// Services is the number of services in the mesh file. Default 1000.
	Services int
	// Namespaces is the number of namespaces the services are dealt over. Default 50.
	Namespaces int
	// Scopings are the scopings to run each number of proxies with (ScopingSidecar,
	// ScopingNone). Default ScopingSidecar.
	Scopings []string
	// MaxUnscoped skips ScopingNone runs of more proxies than this (every proxy
	// then receives the whole mesh: minutes per change on a small machine). Zero:
	// no limit.
	MaxUnscoped int
	// Changes is the number of changes of each kind per run. Default 3.
	Changes int
	// ConnectRate is how many proxies connect per second during the ramp. Default 500.
	ConnectRate int
	// Quiet is how long no response may arrive for the control plane to count as
	// caught up. Default 1s.
	Quiet time.Duration
	// ChangeTimeout bounds the wait for every proxy to ACK one change, and the ramp.
	// Default 3 minutes.
	ChangeTimeout time.Duration
	// MaxControlRSS stops a run whose control plane grows beyond it, so that a
	// benchmark cannot exhaust the machine. Default 6 GiB.
	MaxControlRSS uint64
	// WorkDir holds the mesh file and the control plane's log and data. Required.
	WorkDir string
	// Logger receives progress records. Default: discard.
	Logger *slog.Logger
	// Out receives the printed table. Default: os.Stdout.
	Out io.Writer
}

func (c *Config) setDefaults() error {
	if c.Trellis == "" {
		return fmt.Errorf("xdsload: no trellis binary given")
	}
	if c.WorkDir == "" {
		return fmt.Errorf("xdsload: no work directory given")
	}
	if len(c.Proxies) == 0 {
		c.Proxies = []int{1000, 5000}
	}
	if c.Services <= 0 {
		c.Services = 1000
	}
	if c.Namespaces <= 0 {
		c.Namespaces = 50
	}
	if len(c.Scopings) == 0 {
		c.Scopings = []string{ScopingSidecar}
	}
	for _, s := range c.Scopings {
		if s != ScopingSidecar && s != ScopingNone {
			return fmt.Errorf("xdsload: unknown scoping %q (want %s or %s)", s, ScopingSidecar, ScopingNone)
		}
	}
	if c.Changes <= 0 {
		c.Changes = 3
	}
	if c.ConnectRate <= 0 {
		c.ConnectRate = 500
	}
	if c.Quiet <= 0 {
		c.Quiet = time.Second
	}
	if c.ChangeTimeout <= 0 {
		c.ChangeTimeout = 3 * time.Minute
	}
	if c.MaxControlRSS == 0 {
		c.MaxControlRSS = 6 << 30
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	return nil
}

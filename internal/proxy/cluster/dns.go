package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// Resolver resolves host names; *net.Resolver is one.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)

// dnsFirstWait bounds the first resolution of a new DNS cluster, which runs on the
// configuration path so that the cluster has endpoints when it is published.
const dnsFirstWait = 2 * time.Second

// dnsKey identifies what a DNS cluster resolves and how often.
func dnsKey(c *runtime.Cluster) string {
	return fmt.Sprintf("%v|%v", c.Endpoints, c.DNSRefreshRate)
}

// resolveAll resolves every host:port of a STRICT_DNS cluster into addresses (all of
// each name's addresses, as Envoy's strict DNS does), sorted. A name that fails is
// skipped and reported; the others are kept.
func resolveAll(ctx context.Context, res Resolver, hostports []string) ([]string, error) {
	var addrs []string
	var errs []string
	for _, hp := range hostports {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ips, err := res.LookupHost(ctx, host)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", host, err))
			continue
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip, port))
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	if len(errs) > 0 {
		return addrs, fmt.Errorf("resolving %s", strings.Join(errs, "; "))
	}
	return addrs, nil
}

// startDNS re-resolves the cluster's names every refresh rate until stopped, and
// rebuilds the picker when the addresses change. A failed resolution keeps the last
// addresses. Call with mu held.
func (s *State) startDNS(ctx context.Context, c *runtime.Cluster) {
	ctx, cancel := context.WithCancel(ctx)
	s.dnsStop = cancel
	names, every := c.Endpoints, c.DNSRefreshRate
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, every)
			addrs, err := resolveAll(rctx, s.res, names)
			rcancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.logger.Warn("resolving DNS cluster", "cluster", s.name, "error", err)
				if len(addrs) == 0 {
					continue
				}
			}
			s.mu.Lock()
			if ctx.Err() == nil && !slices.Equal(addrs, s.addrs) {
				s.logger.Debug("DNS cluster endpoints changed", "cluster", s.name, "endpoints", addrs)
				s.rebuild(addrs)
			}
			s.mu.Unlock()
		}
	})
}

func (s *State) stopDNS() {
	if s.dnsStop != nil {
		s.dnsStop()
		s.dnsStop = nil
	}
	s.dnsKey = ""
}

package proxy

import (
	"context"
	"fmt"

	"trellis.dev/trellis/internal/proxy/dns"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// newDNS binds the DNS server when the bootstrap names an address (in a pod:
// bootstrap.DefaultDNS, where `trellis iptables --redirect-dns` sends the app's
// queries).
func (p *Proxy) newDNS() error {
	addr := p.cfg.Bootstrap.DNS
	if addr == "" {
		return nil
	}
	var err error
	p.dns, err = dns.New(dns.Config{Addr: addr, Logger: p.cfg.Logger.With("component", "dns")})
	if err != nil {
		return fmt.Errorf("DNS server on %s: %w", addr, err)
	}
	return nil
}

// serveDNS serves DNS until ctx ends; the returned function waits for it to stop.
func (p *Proxy) serveDNS(ctx context.Context) (wait func() error) {
	if p.dns == nil {
		return func() error { return nil }
	}
	p.cfg.Logger.Info("DNS server listening", "addr", p.dns.Addr(), "upstreams", p.dns.Upstreams())
	done := make(chan error, 1)
	go func() { done <- p.dns.Serve(ctx) }()
	return func() error { return <-done }
}

// updateDNS gives the DNS server the table's hosts.
func (p *Proxy) updateDNS(t *runtime.Table) {
	if p.dns != nil {
		p.dns.SetTable(t.DNS)
	}
}

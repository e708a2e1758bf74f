package iptables

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The chains Trellis owns in the nat table.
const (
	ChainInbound    = "TRELLIS_INBOUND"
	ChainInRedirect = "TRELLIS_IN_REDIRECT"
	ChainOutput     = "TRELLIS_OUTPUT"
	ChainRedirect   = "TRELLIS_REDIRECT"
	ChainDNS        = "TRELLIS_DNS"
	// In the raw table, with DNSPort: conntrack zones for DNS (see script).
	ChainDNSOut = "TRELLIS_DNS_OUT"
	ChainDNSIn  = "TRELLIS_DNS_IN"
)

// Config is what `trellis iptables` is told by the injected init container.
type Config struct {
	ProxyUID     int // the proxy's own traffic is never redirected
	ProxyGID     int // likewise, if > 0
	InboundPort  int // 15006
	OutboundPort int // 15001

	// IncludeInboundPorts is "*" (every port) or a list of ports to redirect.
	IncludeInboundPorts []string
	ExcludeInboundPorts []int
	// ExcludeOutboundPorts are destination ports left alone.
	ExcludeOutboundPorts []int
	// IncludeOutboundCIDRs is "*" (everything) or a list of CIDRs to redirect.
	IncludeOutboundCIDRs []string
	ExcludeOutboundCIDRs []string
	// DNSPort, if > 0, is where the pod's DNS queries (UDP and TCP to port 53, any
	// address) are redirected: the sidecar's DNS server. The proxy's own are not.
	DNSPort int
}

// jump is a rule in a built-in chain (of the nat table, or raw) that reaches one of
// ours.
type jump struct{ table, chain, rule string }

// jumps are the rules added to PREROUTING and OUTPUT (once each); DNS first, so that
// TCP queries are redirected to the DNS server rather than to the outbound port.
func jumps(cfg Config) []jump {
	var out []jump
	if cfg.DNSPort > 0 {
		out = append(out,
			jump{"nat", "OUTPUT", "-p udp -m udp --dport 53 -j " + ChainDNS},
			jump{"nat", "OUTPUT", "-p tcp -m tcp --dport 53 -j " + ChainDNS})
	}
	out = append(out,
		jump{"nat", "PREROUTING", "-p tcp -j " + ChainInbound},
		jump{"nat", "OUTPUT", "-p tcp -j " + ChainOutput})
	if cfg.DNSPort > 0 {
		out = append(out,
			jump{"raw", "OUTPUT", "-p udp -j " + ChainDNSOut},
			jump{"raw", "PREROUTING", "-p udp -m udp --sport 53 -j " + ChainDNSIn})
	}
	return out
}

// Script returns the iptables-restore input (nat table) for cfg. With withJumps, it
// also appends the jumps from PREROUTING and OUTPUT; Apply leaves out those that
// already exist.
func Script(cfg Config, withJumps bool) (string, error) {
	return script(cfg, func(jump) bool { return withJumps })
}

func script(cfg Config, addJump func(jump) bool) (string, error) {
	if err := validate(cfg); err != nil {
		return "", err
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("*nat")
	for _, c := range []string{ChainInbound, ChainInRedirect, ChainOutput, ChainRedirect, ChainDNS} {
		line(":%s - [0:0]", c)
	}
	line("-A %s -p tcp -j REDIRECT --to-ports %d", ChainInRedirect, cfg.InboundPort)
	line("-A %s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, cfg.OutboundPort)

	// Inbound: everything (but the excluded ports) or only the included ports.
	if isAll(cfg.IncludeInboundPorts) {
		for _, p := range cfg.ExcludeInboundPorts {
			line("-A %s -p tcp -m tcp --dport %d -j RETURN", ChainInbound, p)
		}
		line("-A %s -p tcp -j %s", ChainInbound, ChainInRedirect)
	} else {
		excluded := map[int]bool{}
		for _, p := range cfg.ExcludeInboundPorts {
			excluded[p] = true
		}
		for _, s := range cfg.IncludeInboundPorts {
			p, _ := strconv.Atoi(s)
			if !excluded[p] {
				line("-A %s -p tcp -m tcp --dport %d -j %s", ChainInbound, p, ChainInRedirect)
			}
		}
	}

	// Outbound: never the proxy's own traffic, never loopback.
	line("-A %s -m owner --uid-owner %d -j RETURN", ChainOutput, cfg.ProxyUID)
	if cfg.ProxyGID > 0 {
		line("-A %s -m owner --gid-owner %d -j RETURN", ChainOutput, cfg.ProxyGID)
	}
	line("-A %s -o lo -j RETURN", ChainOutput)
	line("-A %s -d 127.0.0.1/32 -j RETURN", ChainOutput)
	for _, p := range cfg.ExcludeOutboundPorts {
		line("-A %s -p tcp -m tcp --dport %d -j RETURN", ChainOutput, p)
	}
	for _, c := range cfg.ExcludeOutboundCIDRs {
		line("-A %s -d %s -j RETURN", ChainOutput, netip.MustParsePrefix(c).Masked())
	}
	if isAll(cfg.IncludeOutboundCIDRs) {
		line("-A %s -j %s", ChainOutput, ChainRedirect)
	} else {
		for _, c := range cfg.IncludeOutboundCIDRs {
			line("-A %s -d %s -j %s", ChainOutput, netip.MustParsePrefix(c).Masked(), ChainRedirect)
		}
	}
	// DNS: everyone's queries but the proxy's go to the DNS server.
	if cfg.DNSPort > 0 {
		line("-A %s -m owner --uid-owner %d -j RETURN", ChainDNS, cfg.ProxyUID)
		if cfg.ProxyGID > 0 {
			line("-A %s -m owner --gid-owner %d -j RETURN", ChainDNS, cfg.ProxyGID)
		}
		line("-A %s -p udp -j REDIRECT --to-ports %d", ChainDNS, cfg.DNSPort)
		line("-A %s -p tcp -j REDIRECT --to-ports %d", ChainDNS, cfg.DNSPort)
	}
	for _, j := range jumps(cfg) {
		if j.table == "nat" && addJump(j) {
			line("-A %s %s", j.chain, j.rule)
		}
	}
	line("COMMIT")

	// With DNS redirected, the app's queries to a resolver and the proxy's (forwarded
	// from its DNS server to the same resolver) could share a UDP 4-tuple: a query of
	// the app whose source port the proxy used a moment ago would match the proxy's
	// conntrack entry, which was not redirected, and go to the resolver directly. So
	// they are tracked in two conntrack zones: the proxy's queries to port 53 and their
	// answers in zone 1, the app's queries and the DNS server's answers in zone 2.
	if cfg.DNSPort > 0 {
		line("*raw")
		line(":%s - [0:0]", ChainDNSOut)
		line(":%s - [0:0]", ChainDNSIn)
		line("-A %s -p udp -m udp --dport 53 -m owner --uid-owner %d -j CT --zone 1", ChainDNSOut, cfg.ProxyUID)
		line("-A %s -p udp -m udp --sport %d -m owner --uid-owner %d -j CT --zone 2", ChainDNSOut, cfg.DNSPort, cfg.ProxyUID)
		line("-A %s -p udp -m udp --dport 53 -m owner ! --uid-owner %d -j CT --zone 2", ChainDNSOut, cfg.ProxyUID)
		line("-A %s -p udp -m udp --sport 53 -j CT --zone 1", ChainDNSIn)
		for _, j := range jumps(cfg) {
			if j.table == "raw" && addJump(j) {
				line("-A %s %s", j.chain, j.rule)
			}
		}
		line("COMMIT")
	}
	return b.String(), nil
}

func isAll(list []string) bool {
	for _, s := range list {
		if s == "*" {
			return true
		}
	}
	return false
}

func validate(cfg Config) error {
	if cfg.ProxyUID < 0 {
		return fmt.Errorf("proxy UID %d: must not be negative", cfg.ProxyUID)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"inbound port", cfg.InboundPort}, {"outbound port", cfg.OutboundPort}, {"DNS port", cfg.DNSPort}} {
		if p.name == "DNS port" && p.port == 0 {
			continue // no DNS redirection
		}
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("%s %d: out of range 1..65535", p.name, p.port)
		}
	}
	if !isAll(cfg.IncludeInboundPorts) {
		for _, s := range cfg.IncludeInboundPorts {
			if p, err := strconv.Atoi(s); err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("include inbound port %q: want \"*\" or a port 1..65535", s)
			}
		}
	}
	for _, ports := range [][]int{cfg.ExcludeInboundPorts, cfg.ExcludeOutboundPorts} {
		for _, p := range ports {
			if p < 1 || p > 65535 {
				return fmt.Errorf("excluded port %d: out of range 1..65535", p)
			}
		}
	}
	for _, list := range [][]string{cfg.ExcludeOutboundCIDRs, cfg.IncludeOutboundCIDRs} {
		for _, c := range list {
			if c == "*" {
				continue
			}
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return fmt.Errorf("IP range %q: %w", c, err)
			}
			if !p.Addr().Is4() {
				return fmt.Errorf("IP range %q: only IPv4 ranges are supported", c)
			}
		}
	}
	return nil
}

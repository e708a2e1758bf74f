package runtime

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"trellis.dev/trellis/internal/proxy/authz"
)

// Table is one complete, immutable runtime configuration: every listener with its
// routes resolved to clusters, and every cluster with its endpoints. The request path
// reads the current Table through an atomic pointer and never sees it change.
type Table struct {
	// Listeners by name.
	Listeners map[string]*Listener
	// Clusters by name.
	Clusters map[string]*Cluster
	// DNS is the sidecar's DNS table, host (lower case, no final dot) -> addresses,
	// from the capture listener's metadata (docs/xds.md "DNS table"); nil if none.
	DNS map[string][]netip.Addr

	byAddr map[string]*Listener
}

// ListenerAt returns the listener bound at addr (host:port), or nil.
func (t *Table) ListenerAt(addr string) *Listener {
	if t == nil {
		return nil
	}
	return t.byAddr[addr]
}

// Listener is one listener: its filter chains, each an HTTP connection manager
// (Routes set) or a TCP proxy (TCP set). Routes, TCP and StatPrefix repeat those of
// the first chain, for the listeners that have one.
type Listener struct {
	Name string
	// Address is host:port.
	Address    string
	StatPrefix string
	// Inbound is true for a listener with traffic_direction INBOUND.
	Inbound bool
	// Routes are the HTTP routes; nil for a TCP proxy.
	Routes *RouteTable
	// TCP is the TCP proxy; nil for HTTP.
	TCP *TCPProxy
	// Chains are the filter chains, in order (at least one).
	Chains []*FilterChain
	// Inspect is set when a chain matches a transport protocol: the first bytes of
	// each connection are peeked to tell TLS from plaintext.
	Inspect bool
	// UseOriginalDst is set on a capture listener (use_original_dst): a connection it
	// accepts is served by the listener whose address is the connection's original
	// destination, else by the one at 0.0.0.0 and its port, else by its own chains.
	UseOriginalDst bool
	// OriginalDst is set when the listener learns its connections' original
	// destination (the original_dst listener filter, or UseOriginalDst): its
	// ORIGINAL_DST clusters connect there.
	OriginalDst bool
	// Virtual is set by bind_to_port false: the listener is never bound; it serves
	// only the connections a capture listener hands it.
	Virtual bool
	// Detect is set when the listener has the HTTP inspector: the first bytes of a
	// plaintext connection are peeked to tell HTTP/1.x and HTTP/2 from anything else,
	// and chains are chosen by application protocol too (ChainFor).
	Detect bool
}

// FilterChain is one filter chain of a listener.
type FilterChain struct {
	Name string
	// TransportProtocol is what the chain matches: TransportTLS, TransportRaw, or ""
	// for any connection.
	TransportProtocol string
	// ApplicationProtocols are what the chain matches (AppHTTP11, AppH2C, AppH2);
	// empty for any.
	ApplicationProtocols []string
	StatPrefix           string
	Routes               *RouteTable
	TCP                  *TCPProxy
	// TLS, when set, terminates mutual TLS on the chain's connections.
	TLS *DownstreamTLS
	// XFCC is what the HTTP connection manager does with x-forwarded-client-cert.
	XFCC XFCC
	// RateLimit is the HTTP connection manager's ratelimit filter (ratelimit.go);
	// nil for none. RateLimitCluster is its cluster.
	RateLimit        *GlobalRateLimit
	RateLimitCluster *Cluster
	// Normalize is the HTTP connection manager's path normalization, and Authz its
	// authorization filters in order (parse_authz.go).
	Normalize authz.PathOptions
	Authz     []AuthzFilter
}

// Chain returns the filter chain that serves HTTP on a connection that starts with a
// TLS ClientHello (isTLS) or not: the chain matching that transport protocol, else a
// chain matching any, else nil (the connection is refused); among them, one matching
// HTTP/1.1 (which also serves HTTP/2) before one matching no application protocol.
// It is ChainFor(isTLS, AppHTTP11).
func (l *Listener) Chain(isTLS bool) *FilterChain {
	return l.ChainFor(isTLS, AppHTTP11)
}

// RouteTable is a compiled route configuration.
type RouteTable struct {
	Name         string
	VirtualHosts []*VirtualHost

	byDomain map[string]*VirtualHost
	wildcard *VirtualHost
}

// VirtualHost matches host, which may carry a port, exactly and case-insensitively
// against the virtual hosts' domains; a "*" domain catches every other host. It
// returns nil when none matches.
func (rt *RouteTable) VirtualHost(host string) *VirtualHost {
	if vh, ok := rt.byDomain[host]; ok {
		return vh
	}
	if hasUpper(host) {
		if vh, ok := rt.byDomain[strings.ToLower(host)]; ok {
			return vh
		}
	}
	return rt.wildcard
}

func hasUpper(s string) bool {
	for i := range len(s) {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// VirtualHost is one virtual host: its routes, tried in order.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []*Route
}

// Route returns the first route that matches r, or nil.
func (vh *VirtualHost) Route(r *http.Request) *Route {
	for _, rt := range vh.Routes {
		if rt.Match.Matches(r) {
			return rt
		}
	}
	return nil
}

// TCPProxy is what a TCP proxy listener does with a connection.
type TCPProxy struct {
	// Clusters are where connections go, each with its weight: one draw per connection.
	Clusters []WeightedCluster
	// IdleTimeout closes a connection when neither side sent anything for this long;
	// zero means never.
	IdleTimeout time.Duration
	// Authz are the network authorization filters run, in order, when a connection
	// is accepted (parse_authz.go).
	Authz []AuthzFilter
}

// Pick draws a cluster by weight; n is a random number in [0, total weight).
func (p *TCPProxy) Pick(n uint64) *Cluster { return pickWeighted(p.Clusters, n).Cluster }

// TotalWeight is the sum of the weights.
func (p *TCPProxy) TotalWeight() uint64 { return totalWeight(p.Clusters) }

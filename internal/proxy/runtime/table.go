package runtime

import (
	"strings"
	"time"

	"trellis.dev/trellis/internal/lb"
)

// Table is one complete, immutable runtime configuration: every listener with its
// routes resolved to clusters, and every cluster with its endpoints. The request path
// reads the current Table through an atomic pointer and never sees it change.
type Table struct {
	// Listeners by name.
	Listeners map[string]*Listener
	// Clusters by name.
	Clusters map[string]*Cluster

	byAddr map[string]*Listener
}

// ListenerAt returns the listener bound at addr (host:port), or nil.
func (t *Table) ListenerAt(addr string) *Listener {
	if t == nil {
		return nil
	}
	return t.byAddr[addr]
}

// Listener is one listener: an HTTP connection manager (Routes set) or a TCP proxy
// (Cluster set).
type Listener struct {
	Name string
	// Address is host:port.
	Address    string
	StatPrefix string
	// Routes are the HTTP routes; nil for a TCP proxy.
	Routes *RouteTable
	// Cluster is where a TCP proxy sends connections; nil for HTTP.
	Cluster *Cluster
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

// Route returns the first route whose prefix matches path, or nil.
func (vh *VirtualHost) Route(path string) *Route {
	for _, r := range vh.Routes {
		if strings.HasPrefix(path, r.Prefix) {
			return r
		}
	}
	return nil
}

// Route sends requests whose path starts with Prefix to Cluster.
type Route struct {
	Prefix  string
	Cluster *Cluster
}

// Cluster is a set of endpoints and how to reach them.
type Cluster struct {
	Name           string
	ConnectTimeout time.Duration
	// HTTP2 is true when the upstream speaks HTTP/2 with prior knowledge (h2c).
	HTTP2 bool
	// Endpoints are the endpoint addresses (host:port), in the order received.
	Endpoints []string
	// Picker balances over Endpoints.
	Picker lb.Picker
	// Upstream is attached by the request path (its connection pool for this
	// cluster) before the table is published; the runtime never reads it.
	Upstream any
}

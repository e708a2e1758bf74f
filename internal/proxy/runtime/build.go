package runtime

import (
	"errors"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// ErrUnresolved is wrapped by Build's error when a reference does not resolve yet:
// a listener's route configuration, a route's cluster, or an EDS cluster's endpoints
// have not been received. It is the normal state while a configuration arrives.
var ErrUnresolved = errors.New("configuration incomplete")

// Build compiles the resources into a Table. Every resource must have passed Validate.
// It fails, wrapping ErrUnresolved, unless every reference resolves: each RDS
// listener's route configuration, each route's and TCP proxy's cluster, and each EDS
// cluster's load assignment (an empty assignment is fine).
func Build(res Resources) (*Table, error) {
	t := &Table{
		Listeners: make(map[string]*Listener, len(res.Listeners)),
		Clusters:  make(map[string]*Cluster, len(res.Clusters)),
		byAddr:    make(map[string]*Listener, len(res.Listeners)),
	}
	var missing []string
	for _, name := range sortedKeys(res.Clusters) {
		spec, err := parseCluster(res.Clusters[name])
		if err != nil {
			return nil, asError(ClusterType, name, err)
		}
		addrs := spec.static
		if spec.eds {
			cla, ok := res.Endpoints[spec.edsName]
			if !ok {
				missing = append(missing, fmt.Sprintf("cluster %q: endpoints %q not received", name, spec.edsName))
				continue
			}
			if addrs, err = parseLoadAssignment(cla); err != nil {
				return nil, asError(EndpointType, spec.edsName, err)
			}
			spec.cluster.Peers = endpointPeers(cla)
		}
		if tc := spec.cluster.TLS; tc != nil && tc.RootSecret != "" {
			if _, ok := res.Secrets[tc.RootSecret]; !ok {
				missing = append(missing, fmt.Sprintf("cluster %q: secret %q not received", name, tc.RootSecret))
				continue
			}
		}
		c := spec.cluster
		c.Endpoints = addrs
		t.Clusters[name] = &c
	}
	routes := map[string]*RouteTable{}
	for _, name := range sortedKeys(res.Listeners) {
		spec, err := parseListener(res.Listeners[name])
		if err != nil {
			return nil, asError(ListenerType, name, err)
		}
		l := &Listener{Name: name, Address: spec.addr, Inspect: spec.inspect, Detect: spec.detect,
			Inbound:        res.Listeners[name].GetTrafficDirection() == corev3.TrafficDirection_INBOUND,
			UseOriginalDst: spec.useOriginalDst, OriginalDst: spec.origDst, Virtual: spec.virtual}
		t.mergeDNS(spec.dns)
		complete := true
		for _, cs := range spec.chains {
			fc, err := buildChain(res, name, cs, t.Clusters, routes, &missing)
			if err != nil {
				return nil, err
			}
			if fc == nil {
				complete = false
				continue
			}
			l.Chains = append(l.Chains, fc)
		}
		if !complete {
			continue
		}
		first := l.Chains[0]
		l.StatPrefix, l.Routes, l.TCP = first.StatPrefix, first.Routes, first.TCP
		t.Listeners[name] = l
		t.byAddr[l.Address] = l
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnresolved, joinLimited(missing, 5))
	}
	return t, nil
}

// buildChain compiles one filter chain of listener name; nil (with what is missing
// appended) when a reference does not resolve.
func buildChain(res Resources, name string, cs *chainSpec, clusters map[string]*Cluster, routes map[string]*RouteTable, missing *[]string) (*FilterChain, error) {
	fc := &FilterChain{Name: cs.name, TransportProtocol: cs.proto, ApplicationProtocols: cs.apps}
	if cs.tls != nil {
		if _, ok := res.Secrets[cs.tls.RootSecret]; !ok {
			*missing = append(*missing, fmt.Sprintf("listener %q: secret %q not received", name, cs.tls.RootSecret))
			return nil, nil
		}
		d := *cs.tls
		fc.TLS = &d
	}
	switch {
	case cs.tcp != nil:
		fc.StatPrefix = cs.tcp.statPrefix
		fc.TCP = &TCPProxy{IdleTimeout: cs.tcp.idleTimeout, Clusters: cs.tcp.clusters, Authz: cs.tcp.authz}
		resolveAuthz(fc.TCP.Authz, name, clusters, missing)
		for i := range fc.TCP.Clusters {
			wc := &fc.TCP.Clusters[i]
			if wc.Cluster = clusters[wc.name]; wc.Cluster == nil {
				*missing = append(*missing, fmt.Sprintf("listener %q: cluster %q not received", name, wc.name))
			}
		}
	case cs.http.inline != nil:
		fc.StatPrefix, fc.XFCC = cs.http.statPrefix, cs.http.xfcc
		fc.Routes, *missing = link(cs.http.inline, clusters, *missing)
	default:
		fc.StatPrefix, fc.XFCC = cs.http.statPrefix, cs.http.xfcc
		rt, ok := routes[cs.http.rds]
		if !ok {
			rc, received := res.Routes[cs.http.rds]
			if !received {
				*missing = append(*missing, fmt.Sprintf("listener %q: route configuration %q not received", name, cs.http.rds))
				return nil, nil
			}
			rs, err := parseRouteConfig(rc)
			if err != nil {
				return nil, asError(RouteType, cs.http.rds, err)
			}
			rt, *missing = link(rs, clusters, *missing)
			routes[cs.http.rds] = rt
		}
		fc.Routes = rt
	}
	if cs.http != nil {
		fc.Normalize, fc.Authz = cs.http.normalize, cs.http.authz
		resolveAuthz(fc.Authz, name, clusters, missing)
	}
	if cs.http != nil && cs.http.rateLimit != nil {
		fc.RateLimit = cs.http.rateLimit
		if fc.RateLimitCluster = clusters[fc.RateLimit.Cluster]; fc.RateLimitCluster == nil {
			*missing = append(*missing, fmt.Sprintf("listener %q: rate-limit cluster %q not received", name, fc.RateLimit.Cluster))
		}
	}
	return fc, nil
}

// link resolves a route configuration's clusters, appending what is missing.
func link(spec *routeSpec, clusters map[string]*Cluster, missing []string) (*RouteTable, []string) {
	rt := &RouteTable{Name: spec.name, byDomain: map[string]*VirtualHost{}}
	for _, vs := range spec.vhosts {
		vh := &VirtualHost{Name: vs.name, Domains: vs.domains}
		resolve := func(name string) *Cluster {
			c := clusters[name]
			if c == nil {
				missing = append(missing, fmt.Sprintf("route configuration %q: virtual host %q: cluster %q not received", spec.name, vs.name, name))
			}
			return c
		}
		for _, r := range vs.routes {
			if a := r.Action; a != nil {
				for i := range a.Clusters {
					a.Clusters[i].Cluster = resolve(a.Clusters[i].name)
				}
				for i := range a.Mirrors {
					a.Mirrors[i].Cluster = resolve(a.Mirrors[i].name)
				}
			}
			vh.Routes = append(vh.Routes, r)
		}
		for _, d := range vs.domains {
			if d == "*" {
				rt.wildcard = vh
				continue
			}
			rt.byDomain[d] = vh
		}
		rt.VirtualHosts = append(rt.VirtualHosts, vh)
	}
	return rt, missing
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinLimited(items []string, n int) string {
	s := ""
	for i, it := range items {
		if i == n {
			return s + fmt.Sprintf("; and %d more", len(items)-n)
		}
		if i > 0 {
			s += "; "
		}
		s += it
	}
	return s
}

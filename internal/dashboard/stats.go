package dashboard

import (
	"slices"
	"strings"
	"time"

	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/registry"
)

// unknown is the label value of what a sidecar could not tell.
const unknown = "unknown"

// flowKey is a request flow whatever the reporter: caller, service, callee.
type flowKey struct {
	SrcWorkload, SrcNamespace string
	DstService                string
	DstWorkload, DstNamespace string
	Protocol                  string
}

// flows picks, for each flow, what the caller's sidecar reported (reporter
// source), else what the callee's did (a caller without a sidecar), as Kiali does.
func flows(series map[seriesKey]*counts) map[flowKey]*counts {
	src, dst := map[flowKey]*counts{}, map[flowKey]*counts{}
	for k, c := range series {
		fk := flowKey{k.SrcWorkload, k.SrcNamespace, k.DstService, k.DstWorkload, k.DstNamespace, k.Protocol}
		m := dst
		if k.Reporter == "source" {
			m = src
		}
		sum, ok := m[fk]
		if !ok {
			sum = &counts{}
			m[fk] = sum
		}
		sum.add(c)
	}
	for fk, c := range dst {
		if _, ok := src[fk]; !ok {
			src[fk] = c
		}
	}
	return src
}

// statsOf turns counts over span into golden signals.
func statsOf(c *counts, span time.Duration, bounds []float64) Stats {
	if c == nil {
		return Stats{}
	}
	s := Stats{Requests: c.requests}
	if span > 0 {
		s.RPS = c.requests / span.Seconds()
	}
	if c.requests > 0 {
		s.SuccessRate = ptr(1 - c.failures/c.requests)
	}
	if c.observations > 0 && len(c.buckets) == len(bounds) {
		for _, q := range []struct {
			q   float64
			dst **float64
		}{{0.5, &s.P50}, {0.9, &s.P90}, {0.99, &s.P99}} {
			if v, ok := quantile(q.q, bounds, c.buckets, c.observations); ok {
				*q.dst = ptr(v)
			}
		}
	}
	return s
}

func ptr(v float64) *float64 { return &v }

func workloadID(ns, name string) string { return "workload/" + ns + "/" + name }
func serviceID(fqdn string) string      { return "service/" + fqdn }

// splitFQDN returns the name and namespace of <name>.<namespace>.svc.<domain>; for
// another host (a ServiceEntry), the host and "".
func splitFQDN(fqdn string) (name, namespace string) {
	parts := strings.Split(fqdn, ".")
	if len(parts) >= 3 && parts[2] == "svc" {
		return parts[0], parts[1]
	}
	return fqdn, ""
}

// sumBy sums flows into groups.
func sumBy[K comparable](fl map[flowKey]*counts, key func(flowKey) (K, bool)) map[K]*counts {
	out := map[K]*counts{}
	for fk, c := range fl {
		k, ok := key(fk)
		if !ok {
			continue
		}
		sum, found := out[k]
		if !found {
			sum = &counts{}
			out[k] = sum
		}
		sum.add(c)
	}
	return out
}

// graph builds the service graph from the window's flows and the registered
// sidecars.
func graph(fl map[flowKey]*counts, span time.Duration, bounds []float64, instances []registry.Instance) ([]Node, []Edge) {
	nodes := map[string]*Node{}
	workload := func(ns, name string) *Node {
		id := workloadID(ns, name)
		if n, ok := nodes[id]; ok {
			return n
		}
		n := &Node{ID: id, Kind: KindWorkload, Name: name, Namespace: ns}
		nodes[id] = n
		return n
	}
	service := func(fqdn string) *Node {
		id := serviceID(fqdn)
		if n, ok := nodes[id]; ok {
			return n
		}
		name, ns := splitFQDN(fqdn)
		n := &Node{ID: id, Kind: KindService, Name: name, Namespace: ns}
		nodes[id] = n
		return n
	}
	type pair struct{ from, to string }
	edges := map[pair]*Edge{}
	declared := map[pair]bool{}
	for _, in := range instances {
		md := in.Metadata
		ns := md.Namespace
		if ns == "" {
			ns = names.DefaultNamespace
		}
		n := workload(ns, md.Workload)
		n.Sidecar = true
		n.App, n.Version = firstOf(md.Labels, "app", "app.kubernetes.io/name"), firstOf(md.Labels, "version", "app.kubernetes.io/version")
		if md.Service != "" {
			s := service(names.ServiceFQDN(md.Service, ns))
			declared[pair{s.ID, n.ID}] = true
		}
	}
	protocols := map[pair]string{}
	addEdge := func(p pair, proto string) {
		if old, ok := protocols[p]; ok && old != proto {
			proto = "mixed"
		}
		protocols[p] = proto
	}
	for fk := range fl {
		src := workload(fk.SrcNamespace, fk.SrcWorkload)
		svc := service(fk.DstService)
		addEdge(pair{src.ID, svc.ID}, fk.Protocol)
		if fk.DstWorkload != unknown {
			dst := workload(fk.DstNamespace, fk.DstWorkload)
			addEdge(pair{svc.ID, dst.ID}, fk.Protocol)
		}
	}
	toSvc := sumBy(fl, func(fk flowKey) (pair, bool) {
		return pair{workloadID(fk.SrcNamespace, fk.SrcWorkload), serviceID(fk.DstService)}, true
	})
	toWl := sumBy(fl, func(fk flowKey) (pair, bool) {
		return pair{serviceID(fk.DstService), workloadID(fk.DstNamespace, fk.DstWorkload)}, true
	})
	for p, proto := range protocols {
		c := toSvc[p]
		if c == nil {
			c = toWl[p]
		}
		edges[p] = &Edge{Source: p.from, Target: p.to, Protocol: proto, Stats: statsOf(c, span, bounds)}
	}
	for p := range declared {
		if _, ok := edges[p]; !ok {
			edges[p] = &Edge{Source: p.from, Target: p.to, Declared: true}
		}
	}
	// A node's stats are the traffic it received.
	intoSvc := sumBy(fl, func(fk flowKey) (string, bool) { return serviceID(fk.DstService), true })
	intoWl := sumBy(fl, func(fk flowKey) (string, bool) {
		return workloadID(fk.DstNamespace, fk.DstWorkload), fk.DstWorkload != unknown
	})
	outN := make([]Node, 0, len(nodes))
	for id, n := range nodes {
		c := intoSvc[id]
		if n.Kind == KindWorkload {
			c = intoWl[id]
		}
		n.Stats = statsOf(c, span, bounds)
		outN = append(outN, *n)
	}
	slices.SortFunc(outN, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	outE := make([]Edge, 0, len(edges))
	for _, e := range edges {
		outE = append(outE, *e)
	}
	slices.SortFunc(outE, func(a, b Edge) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return strings.Compare(a.Target, b.Target)
	})
	return outN, outE
}

func firstOf(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}

// services lists the services that received traffic or are declared, with their
// stats over the window and, when rounds is not nil, a point per round.
func services(fl map[flowKey]*counts, span time.Duration, bounds []float64, instances []registry.Instance, rounds []round) []ServiceStats {
	byFQDN := sumBy(fl, func(fk flowKey) (string, bool) { return fk.DstService, true })
	backends := map[string]map[string]bool{}
	addBackend := func(fqdn, wl string) {
		if backends[fqdn] == nil {
			backends[fqdn] = map[string]bool{}
		}
		if wl != "" {
			backends[fqdn][wl] = true
		}
	}
	for fk := range fl {
		wl := ""
		if fk.DstWorkload != unknown {
			wl = fk.DstNamespace + "/" + fk.DstWorkload
		}
		addBackend(fk.DstService, wl)
	}
	for _, in := range instances {
		md := in.Metadata
		if md.Service == "" {
			continue
		}
		ns := md.Namespace
		if ns == "" {
			ns = names.DefaultNamespace
		}
		addBackend(names.ServiceFQDN(md.Service, ns), ns+"/"+md.Workload)
	}
	var history map[string][]Point
	if rounds != nil {
		history = map[string][]Point{}
		for _, r := range rounds {
			per := sumBy(flows(r.deltas), func(fk flowKey) (string, bool) { return fk.DstService, true })
			for fqdn := range backends {
				s := statsOf(per[fqdn], r.span, bounds)
				history[fqdn] = append(history[fqdn], Point{T: r.at, RPS: s.RPS, SuccessRate: s.SuccessRate, P50: s.P50, P99: s.P99})
			}
		}
	}
	out := make([]ServiceStats, 0, len(backends))
	for fqdn, wls := range backends {
		name, ns := splitFQDN(fqdn)
		s := ServiceStats{FQDN: fqdn, Name: name, Namespace: ns, Stats: statsOf(byFQDN[fqdn], span, bounds),
			Workloads: []string{}, History: history[fqdn]}
		for wl := range wls {
			s.Workloads = append(s.Workloads, wl)
		}
		slices.Sort(s.Workloads)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ServiceStats) int { return strings.Compare(a.FQDN, b.FQDN) })
	return out
}

// workloads lists the workloads that sent or received traffic or have a sidecar.
func workloads(fl map[flowKey]*counts, span time.Duration, bounds []float64, instances []registry.Instance) []WorkloadStats {
	type wk struct{ ns, name string }
	in := sumBy(fl, func(fk flowKey) (wk, bool) { return wk{fk.DstNamespace, fk.DstWorkload}, fk.DstWorkload != unknown })
	out := sumBy(fl, func(fk flowKey) (wk, bool) { return wk{fk.SrcNamespace, fk.SrcWorkload}, fk.SrcWorkload != unknown })
	all := map[wk]bool{}
	for k := range in {
		all[k] = false
	}
	for k := range out {
		all[k] = false
	}
	for _, inst := range instances {
		ns := inst.Metadata.Namespace
		if ns == "" {
			ns = names.DefaultNamespace
		}
		all[wk{ns, inst.Metadata.Workload}] = true
	}
	res := make([]WorkloadStats, 0, len(all))
	for k, sidecar := range all {
		res = append(res, WorkloadStats{Name: k.name, Namespace: k.ns, Sidecar: sidecar,
			Inbound: statsOf(in[k], span, bounds), Outbound: statsOf(out[k], span, bounds)})
	}
	slices.SortFunc(res, func(a, b WorkloadStats) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return res
}

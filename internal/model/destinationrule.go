package model

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	networkingapi "istio.io/api/networking/v1alpha3"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
)

// addDestinationRule gives the ports of the rule's host their traffic policy and
// subsets. Policies merge as Istio documents: port-level settings replace the
// host-level loadBalancer, connectionPool, outlierDetection (each as a whole), and a
// subset's policy, with its own port-level settings, replaces those of the host.
// A second DestinationRule for the same host is reported and ignored.
func (b *builder) addDestinationRule(dr config.DestinationRule) {
	obj := objectRef("DestinationRule", &dr.ObjectMeta, dr.Pos)
	spec := &dr.Spec
	if strings.Contains(spec.GetHost(), "*") {
		b.configErrorf(obj, "spec.host", "wildcard host %q is not supported: name one service; the rule is ignored", spec.GetHost())
		return
	}
	svc := b.mesh.Resolve(spec.GetHost(), obj.Namespace)
	if svc == nil {
		b.configErrorf(obj, "spec.host", "no service %q seen from namespace %q; the rule is ignored", spec.GetHost(), obj.Namespace)
		return
	}
	if first, dup := b.ruleOf[svc.FQDN]; dup {
		b.configErrorf(obj, "spec.host", "%s already has %s, the first by namespace/name; this one is ignored", svc.FQDN, first)
		return
	}
	b.ruleOf[svc.FQDN] = obj.Kind + " " + obj.Namespace + "/" + obj.Name
	source := b.ruleOf[svc.FQDN]

	b.checkPolicies(obj, spec)

	for _, port := range svc.Ports {
		host := forPort(spec.GetTrafficPolicy(), port.Number)
		port.Policy = translatePolicy(source, host)
		port.RuleExportTo = exportTo(spec.GetExportTo(), obj.Namespace)
		port.Subsets = nil
		for _, ss := range spec.GetSubsets() {
			merged := overlay(host, forPort(ss.GetTrafficPolicy(), port.Number))
			sub := &Subset{
				Name:   ss.GetName(),
				Labels: ss.GetLabels(),
				Policy: translatePolicy(source, merged),
			}
			sel := labels.SelectorFromSet(ss.GetLabels())
			sub.Endpoints = []Endpoint{}
			for _, ep := range port.Endpoints {
				if sel.Matches(labels.Set(ep.Labels)) {
					sub.Endpoints = append(sub.Endpoints, ep)
				}
			}
			port.Subsets = append(port.Subsets, sub)
		}
		slices.SortFunc(port.Subsets, func(a, b *Subset) int { return cmp.Compare(a.Name, b.Name) })
	}
}

// forPort is tp with the port-level settings for port applied; nil stays nil.
func forPort(tp *networkingapi.TrafficPolicy, port uint32) *networkingapi.TrafficPolicy {
	if tp == nil {
		return nil
	}
	out := &networkingapi.TrafficPolicy{
		LoadBalancer:     tp.GetLoadBalancer(),
		ConnectionPool:   tp.GetConnectionPool(),
		OutlierDetection: tp.GetOutlierDetection(),
		Tls:              tp.GetTls(),
		RetryBudget:      tp.GetRetryBudget(),
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != port {
			continue
		}
		out.LoadBalancer = cmp.Or(pl.GetLoadBalancer(), out.LoadBalancer)
		out.ConnectionPool = cmp.Or(pl.GetConnectionPool(), out.ConnectionPool)
		out.OutlierDetection = cmp.Or(pl.GetOutlierDetection(), out.OutlierDetection)
		out.Tls = cmp.Or(pl.GetTls(), out.Tls)
		break
	}
	return out
}

// overlay is base with every part that over sets replaced by over's.
func overlay(base, over *networkingapi.TrafficPolicy) *networkingapi.TrafficPolicy {
	switch {
	case over == nil:
		return base
	case base == nil:
		return over
	}
	return &networkingapi.TrafficPolicy{
		LoadBalancer:     cmp.Or(over.GetLoadBalancer(), base.GetLoadBalancer()),
		ConnectionPool:   cmp.Or(over.GetConnectionPool(), base.GetConnectionPool()),
		OutlierDetection: cmp.Or(over.GetOutlierDetection(), base.GetOutlierDetection()),
		Tls:              cmp.Or(over.GetTls(), base.GetTls()),
		RetryBudget:      cmp.Or(over.GetRetryBudget(), base.GetRetryBudget()),
	}
}

// checkPolicies reports the values of a rule's traffic policies that cannot be
// applied, each at the policy that sets it (unsupported fields and values are
// reported by Unsupported).
func (b *builder) checkPolicies(obj config.ObjectRef, spec *networkingapi.DestinationRule) {
	check := func(lb *networkingapi.LoadBalancerSettings, field string) {
		if ch := lb.GetConsistentHash(); ch != nil && ch.GetHashKey() == nil {
			b.configErrorf(obj, field+".loadBalancer.consistentHash", "needs a key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName); requests are spread at random")
		}
	}
	checkTLS := func(t *networkingapi.ClientTLSSettings, field string) {
		if t.GetMode() == networkingapi.ClientTLSSettings_MUTUAL && (t.GetClientCertificate() == "" || t.GetPrivateKey() == "") {
			b.configErrorf(obj, field+".tls", "MUTUAL needs clientCertificate and privateKey (files on the client's machine); the handshake will fail without them")
		}
	}
	policy := func(tp *networkingapi.TrafficPolicy, field string) {
		check(tp.GetLoadBalancer(), field)
		checkTLS(tp.GetTls(), field)
		for i, pl := range tp.GetPortLevelSettings() {
			check(pl.GetLoadBalancer(), field+".portLevelSettings["+strconv.Itoa(i)+"]")
			checkTLS(pl.GetTls(), field+".portLevelSettings["+strconv.Itoa(i)+"]")
		}
	}
	policy(spec.GetTrafficPolicy(), "spec.trafficPolicy")
	for i, ss := range spec.GetSubsets() {
		policy(ss.GetTrafficPolicy(), "spec.subsets["+strconv.Itoa(i)+"].trafficPolicy")
	}
}

// translatePolicy turns a merged Istio traffic policy into the IR; nil for nil.
func translatePolicy(source string, tp *networkingapi.TrafficPolicy) *TrafficPolicy {
	if tp == nil {
		return nil
	}
	out := &TrafficPolicy{
		Source:           source,
		LoadBalancer:     loadBalancer(tp.GetLoadBalancer()),
		ConnectionPool:   connectionPool(tp.GetConnectionPool()),
		OutlierDetection: outlierDetection(tp.GetOutlierDetection()),
		TLS:              clientTLS(tp.GetTls()),
	}
	if rb := tp.GetRetryBudget(); rb != nil {
		out.RetryBudget = &RetryBudget{Percent: DefaultRetryBudget.Percent, MinConcurrency: DefaultRetryBudget.MinConcurrency}
		if rb.GetPercent() != nil {
			out.RetryBudget.Percent = rb.GetPercent().GetValue()
		}
		if rb.GetMinRetryConcurrency() != 0 {
			out.RetryBudget.MinConcurrency = rb.GetMinRetryConcurrency()
		}
	}
	return out
}

// loadBalancer converts load-balancer settings. PASSTHROUGH, which needs the
// original destination, becomes ROUND_ROBIN (reported by Unsupported); a consistent
// hash without a key hashes nothing, so requests are spread at random.
func loadBalancer(lb *networkingapi.LoadBalancerSettings) *LoadBalancer {
	if lb == nil {
		return nil
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		out := &LoadBalancer{Policy: LBRingHash, MinimumRingSize: cmp.Or(ch.GetRingHash().GetMinimumRingSize(), ch.GetMinimumRingSize())}
		switch {
		case ch.GetHttpHeaderName() != "":
			out.Hash = &HashPolicy{Header: strings.ToLower(ch.GetHttpHeaderName())}
		case ch.GetHttpCookie() != nil:
			c := ch.GetHttpCookie()
			out.Hash = &HashPolicy{Cookie: c.GetName(), CookiePath: c.GetPath(), CookieTTL: durationOf(c.GetTtl())}
		case ch.GetUseSourceIp():
			out.Hash = &HashPolicy{SourceIP: true}
		case ch.GetHttpQueryParameterName() != "":
			out.Hash = &HashPolicy{QueryParam: ch.GetHttpQueryParameterName()}
		}
		return out
	}
	switch lb.GetSimple() {
	case networkingapi.LoadBalancerSettings_UNSPECIFIED:
		return nil
	case networkingapi.LoadBalancerSettings_LEAST_REQUEST, networkingapi.LoadBalancerSettings_LEAST_CONN:
		return &LoadBalancer{Policy: LBLeastRequest}
	case networkingapi.LoadBalancerSettings_RANDOM:
		return &LoadBalancer{Policy: LBRandom}
	}
	return &LoadBalancer{Policy: LBRoundRobin}
}

func connectionPool(cp *networkingapi.ConnectionPoolSettings) *ConnectionPool {
	if cp == nil {
		return nil
	}
	tcp, http := cp.GetTcp(), cp.GetHttp()
	return &ConnectionPool{
		MaxConnections:           positive(tcp.GetMaxConnections()),
		ConnectTimeout:           durationOf(tcp.GetConnectTimeout()),
		TCPIdleTimeout:           durationOf(tcp.GetIdleTimeout()),
		MaxPendingRequests:       positive(http.GetHttp1MaxPendingRequests()),
		MaxRequests:              positive(http.GetHttp2MaxRequests()),
		MaxRequestsPerConnection: positive(http.GetMaxRequestsPerConnection()),
		MaxRetries:               positive(http.GetMaxRetries()),
		IdleTimeout:              durationOf(http.GetIdleTimeout()),
		H2Upgrade:                h2Upgrade(http.GetH2UpgradePolicy()),
	}
}

func outlierDetection(od *networkingapi.OutlierDetection) *OutlierDetection {
	if od == nil {
		return nil
	}
	out := &OutlierDetection{
		Interval:           durationOf(od.GetInterval()),
		BaseEjectionTime:   durationOf(od.GetBaseEjectionTime()),
		MaxEjectionPercent: positive(od.GetMaxEjectionPercent()),
		MinHealthPercent:   positive(od.GetMinHealthPercent()),
	}
	if v := od.GetConsecutive_5XxErrors(); v != nil {
		out.Consecutive5xx = new(v.GetValue())
	}
	if v := od.GetConsecutiveGatewayErrors(); v != nil {
		out.ConsecutiveGatewayFailure = new(v.GetValue())
	}
	return out
}

func positive(v int32) uint32 { return uint32(max(v, 0)) }

// durationOf is d as a Duration; nil for nil.
func durationOf(d *durationpb.Duration) *Duration {
	if d == nil {
		return nil
	}
	v := Duration(d.AsDuration())
	return &v
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

package model

import (
	"slices"
	"strings"
)

// The fields of each traffic kind that Trellis implements, as data; everything else
// that a document sets is reported by Unsupported with the reason given here (or a
// generic one). docs/traffic.md lists the same; TestDocsListEveryField keeps them
// in step.

// FieldTables gives, per kind, the supported field patterns (JSON paths without
// indexes, "*" for a map key) and the reasons for the known unsupported ones.
func FieldTables() map[string]FieldTable {
	out := map[string]FieldTable{}
	for kind, t := range fieldTables {
		out[kind] = FieldTable{Supported: t.Supported(), Unsupported: t.why}
	}
	return out
}

// FoldPolicyField folds the four places of a DestinationRule traffic policy
// (trafficPolicy, its portLevelSettings, a subset's, and the subset's portLevelSettings)
// into spec.trafficPolicy: they have the same fields, translated by the same code.
// Other patterns are returned unchanged.
func FoldPolicyField(kind, pattern string) string {
	if kind != "DestinationRule" {
		return pattern
	}
	p := strings.Replace(pattern, "spec.subsets.trafficPolicy.", "spec.trafficPolicy.", 1)
	if rest, ok := strings.CutPrefix(p, "spec.trafficPolicy.portLevelSettings."); ok && rest != "port.number" {
		p = "spec.trafficPolicy." + rest
	}
	return p
}

// FieldTable is the public view of one kind's table.
type FieldTable struct {
	Supported   []string
	Unsupported map[string]string
}

var fieldTables = map[string]*fieldTable{
	"VirtualService":  virtualServiceFields,
	"DestinationRule": destinationRuleFields,
	"ServiceEntry":    serviceEntryFields,
	"HTTPRoute":       httpRouteFields,
	"GRPCRoute":       grpcRouteFields,
	// PeerAuthentication is a security kind; docs/security.md documents its fields.
	"PeerAuthentication": peerAuthenticationFields,
	// AuthorizationPolicy and RequestAuthentication: docs/authorization.md.
	"AuthorizationPolicy":   authorizationPolicyFields,
	"RequestAuthentication": requestAuthenticationFields,
	"Sidecar":               sidecarFields,
}

var sidecarFields = newFieldTable(
	[]string{"spec.workloadSelector.labels", "spec.egress.hosts", "spec.outboundTrafficPolicy.mode"},
	map[string]string{
		"spec.ingress":                           "inbound listeners come from the workload's ports; the Sidecar does not change them",
		"spec.egress.port":                       "egress hosts apply to every port of the services they select",
		"spec.egress.bind":                       "the outbound listener's address is the sidecar's own setting",
		"spec.egress.captureMode":                "interception is set up by `trellis iptables` or local mode, not per Sidecar",
		"spec.outboundTrafficPolicy.egressProxy": "egress proxies are not implemented",
		"spec.inboundConnectionPool":             "inbound connection limits are not implemented",
	},
	nil,
)

// prefixed is every pattern under each prefix.
func prefixed(prefixes []string, patterns ...string) []string {
	var out []string
	for _, p := range prefixes {
		for _, q := range patterns {
			out = append(out, p+"."+q)
		}
	}
	return out
}

func stringMatchFields(prefix string) []string {
	return prefixed([]string{prefix}, "exact", "prefix", "regex")
}

func destinationFields(prefix string) []string {
	return prefixed([]string{prefix}, "host", "subset", "port.number")
}

func headersFields(prefix string) []string {
	return prefixed([]string{prefix}, "request.set", "request.add", "request.remove",
		"response.set", "response.add", "response.remove")
}

var virtualServiceFields = newFieldTable(
	slices.Concat(
		[]string{"spec.hosts", "spec.gateways", "spec.exportTo"},
		[]string{
			"spec.http.name", "spec.http.match.name", "spec.http.match.uri",
			"spec.http.match.headers.*", "spec.http.match.withoutHeaders.*", "spec.http.match.queryParams.*",
			"spec.http.match.port", "spec.http.match.sourceLabels", "spec.http.match.sourceNamespace",
			"spec.http.match.gateways", "spec.http.match.ignoreUriCase",
		},
		stringMatchFields("spec.http.match.uri"),
		stringMatchFields("spec.http.match.method"),
		stringMatchFields("spec.http.match.authority"),
		stringMatchFields("spec.http.match.headers.*"),
		stringMatchFields("spec.http.match.withoutHeaders.*"),
		stringMatchFields("spec.http.match.queryParams.*"),
		destinationFields("spec.http.route.destination"),
		[]string{"spec.http.route.weight"},
		headersFields("spec.http.route.headers"),
		prefixed([]string{"spec.http.redirect"}, "uri", "authority", "port", "scheme", "redirectCode", "prefixRewrite"),
		[]string{"spec.http.directResponse.status", "spec.http.directResponse.body.string"},
		[]string{"spec.http.rewrite.uri", "spec.http.rewrite.authority",
			"spec.http.rewrite.uriRegexRewrite.match", "spec.http.rewrite.uriRegexRewrite.rewrite"},
		[]string{"spec.http.timeout"},
		prefixed([]string{"spec.http.retries"}, "attempts", "perTryTimeout", "retryOn", "backoff"),
		[]string{"spec.http.fault.delay.fixedDelay", "spec.http.fault.delay.percentage.value", "spec.http.fault.delay.percent",
			"spec.http.fault.abort.httpStatus", "spec.http.fault.abort.grpcStatus", "spec.http.fault.abort.percentage.value"},
		destinationFields("spec.http.mirror"),
		destinationFields("spec.http.mirrors.destination"),
		[]string{"spec.http.mirrors.percentage.value", "spec.http.mirrorPercentage.value", "spec.http.mirrorPercent"},
		[]string{"spec.http.corsPolicy.allowOrigin", "spec.http.corsPolicy.allowMethods", "spec.http.corsPolicy.allowHeaders",
			"spec.http.corsPolicy.exposeHeaders", "spec.http.corsPolicy.maxAge", "spec.http.corsPolicy.allowCredentials"},
		stringMatchFields("spec.http.corsPolicy.allowOrigins"),
		headersFields("spec.http.headers"),
		[]string{"spec.tcp.match.port", "spec.tcp.match.sourceLabels", "spec.tcp.match.sourceNamespace", "spec.tcp.match.gateways"},
		destinationFields("spec.tcp.route.destination"),
		[]string{"spec.tcp.route.weight"},
	),
	map[string]string{
		"spec.tls":                                   "TLS routes need routing by SNI, which the sidecar does not do",
		"spec.http.delegate":                         "delegate VirtualServices are not implemented",
		"spec.http.match.scheme":                     "the sidecar does not match on the scheme",
		"spec.http.match.statPrefix":                 "per-route statistics are not kept",
		"spec.http.retries.retryRemoteLocalities":    "Trellis has no localities",
		"spec.http.retries.retryIgnorePreviousHosts": "a retry may go to any endpoint, the one that failed included",
		"spec.http.fault.delay.exponentialDelay":     "only fixed delays are implemented",
		"spec.http.fault.abort.http2Error":           "only HTTP and gRPC status aborts are implemented",
		"spec.http.redirect.derivePort":              "set the port explicitly",
		"spec.http.directResponse.body.bytes":        "only string bodies are implemented",
		"spec.http.corsPolicy.unmatchedPreflights":   "preflights that match no origin are answered as Envoy does by default",
		"spec.tcp.match.destinationSubnets":          "the sidecar does not see the original destination address",
		"spec.tcp.match.sourceSubnet":                "the sidecar matches sources by labels and namespace only",
	},
	map[string]valueCheck{
		"spec.gateways":            onlyValues("Trellis has no gateways; a VirtualService that names none of \"mesh\" does not apply to sidecars", "mesh"),
		"spec.http.match.gateways": onlyValues("Trellis has no gateways; a match without \"mesh\" does not apply to sidecars", "mesh"),
		"spec.tcp.match.gateways":  onlyValues("Trellis has no gateways; a match without \"mesh\" does not apply to sidecars", "mesh"),
	},
)

// trafficPolicyFields are the supported fields of a traffic policy (host, subset
// and port level; retryBudget only at host and subset level).
func trafficPolicyFields(prefix string, portLevel bool) []string {
	fields := []string{
		"loadBalancer.simple",
		"loadBalancer.consistentHash.httpHeaderName",
		"loadBalancer.consistentHash.httpCookie.name",
		"loadBalancer.consistentHash.httpCookie.path",
		"loadBalancer.consistentHash.httpCookie.ttl",
		"loadBalancer.consistentHash.useSourceIp",
		"loadBalancer.consistentHash.httpQueryParameterName",
		"loadBalancer.consistentHash.ringHash.minimumRingSize",
		"loadBalancer.consistentHash.minimumRingSize",
		"connectionPool.tcp.maxConnections",
		"connectionPool.tcp.connectTimeout",
		"connectionPool.tcp.idleTimeout",
		"connectionPool.http.http1MaxPendingRequests",
		"connectionPool.http.http2MaxRequests",
		"connectionPool.http.maxRequestsPerConnection",
		"connectionPool.http.maxRetries",
		"connectionPool.http.idleTimeout",
		"connectionPool.http.h2UpgradePolicy",
		"outlierDetection.consecutive5xxErrors",
		"outlierDetection.consecutiveGatewayErrors",
		"outlierDetection.interval",
		"outlierDetection.baseEjectionTime",
		"outlierDetection.maxEjectionPercent",
		"outlierDetection.minHealthPercent",
		"tls.mode",
		"tls.clientCertificate",
		"tls.privateKey",
		"tls.caCertificates",
		"tls.subjectAltNames",
		"tls.sni",
		"tls.insecureSkipVerify",
	}
	if portLevel {
		fields = append(fields, "port.number")
	} else {
		fields = append(fields, "retryBudget.percent", "retryBudget.minRetryConcurrency")
	}
	return prefixed([]string{prefix}, fields...)
}

// trafficPolicyWhy are the reasons for the unsupported fields of a traffic policy.
func trafficPolicyWhy(prefixes ...string) map[string]string {
	why := map[string]string{
		"tls.credentialName":                                "sidecars read no Kubernetes Secrets; give clientCertificate, privateKey and caCertificates as files",
		"tls.caCrl":                                         "certificate revocation lists are not checked",
		"tunnel":                                            "tunnelling through a proxy is not implemented",
		"proxyProtocol":                                     "the sidecar does not send the PROXY protocol header",
		"loadBalancer.localityLbSetting":                    "Trellis has no localities",
		"loadBalancer.zoneAwareLbSetting":                   "Trellis has no zones",
		"loadBalancer.warmupDurationSecs":                   "slow start is not implemented",
		"loadBalancer.warmup":                               "slow start is not implemented",
		"loadBalancer.consistentHash.maglev":                "only ring hash is implemented (use ringHash)",
		"loadBalancer.consistentHash.httpCookie.attributes": "cookie attributes are not implemented",
		"connectionPool.tcp.tcpKeepalive":                   "TCP keepalive settings are not implemented",
		"connectionPool.tcp.maxConnectionDuration":          "connections are not closed by age",
		"connectionPool.http.useClientProtocol":             "the protocol to an endpoint follows its port's protocol",
		"connectionPool.http.maxConcurrentStreams":          "HTTP/2 stream limits are not implemented",
		"connectionPool.http.http2KeepAlive":                "HTTP/2 keepalive pings are not implemented",
		"outlierDetection.consecutiveErrors":                "deprecated by Istio: use consecutive5xxErrors",
		"outlierDetection.splitExternalLocalOriginErrors":   "local-origin failures are counted with the others",
		"outlierDetection.consecutiveLocalOriginFailures":   "local-origin failures are counted with the others",
		"outlierDetection.outlierDetectionHttpErrorCodes":   "5xx answers and gateway errors are what counts",
		"retryBudget.budgetInterval":                        "the budget is measured on the requests in flight, as Envoy's is",
	}
	out := map[string]string{}
	for _, p := range prefixes {
		for k, v := range why {
			out[p+"."+k] = v
		}
	}
	return out
}

var destinationRulePolicyPrefixes = []string{
	"spec.trafficPolicy", "spec.trafficPolicy.portLevelSettings",
	"spec.subsets.trafficPolicy", "spec.subsets.trafficPolicy.portLevelSettings",
}

var destinationRuleFields = newFieldTable(
	slices.Concat(
		[]string{"spec.host", "spec.exportTo", "spec.subsets.name", "spec.subsets.labels"},
		trafficPolicyFields("spec.trafficPolicy", false),
		trafficPolicyFields("spec.trafficPolicy.portLevelSettings", true),
		trafficPolicyFields("spec.subsets.trafficPolicy", false),
		trafficPolicyFields("spec.subsets.trafficPolicy.portLevelSettings", true),
	),
	merged(
		trafficPolicyWhy(destinationRulePolicyPrefixes...),
		map[string]string{"spec.workloadSelector": "a DestinationRule applies to every client"},
	),
	map[string]valueCheck{
		"spec.trafficPolicy.loadBalancer.simple":                           passthrough,
		"spec.trafficPolicy.portLevelSettings.loadBalancer.simple":         passthrough,
		"spec.subsets.trafficPolicy.loadBalancer.simple":                   passthrough,
		"spec.subsets.trafficPolicy.portLevelSettings.loadBalancer.simple": passthrough,
	},
)

func passthrough(v any) string {
	if v == "PASSTHROUGH" {
		return "PASSTHROUGH not supported: the sidecar does not see the original destination; ROUND_ROBIN is used"
	}
	return ""
}

func merged(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var serviceEntryFields = newFieldTable(
	[]string{
		"spec.hosts", "spec.ports.number", "spec.ports.protocol", "spec.ports.name", "spec.ports.targetPort",
		"spec.location", "spec.resolution", "spec.exportTo",
		"spec.endpoints.address", "spec.endpoints.ports", "spec.endpoints.labels",
		"spec.subjectAltNames", "spec.endpoints.serviceAccount",
	},
	map[string]string{
		"spec.addresses":          "virtual IPs need transparent interception; clients reach the hosts by name",
		"spec.workloadSelector":   "selecting WorkloadEntries and workloads is not implemented; list the endpoints",
		"spec.endpoints.network":  "Trellis has one network",
		"spec.endpoints.locality": "Trellis has no localities",
		"spec.endpoints.weight":   "endpoints are balanced equally",
	},
	map[string]valueCheck{
		"spec.resolution": func(v any) string {
			if v == "DYNAMIC_DNS" {
				return "DYNAMIC_DNS not supported: it is for wildcard hosts, which are not supported; DNS is used"
			}
			return ""
		},
	},
)

// Gateway API fields shared by HTTPRoute and GRPCRoute.
var (
	parentRefFields = prefixed([]string{"spec.parentRefs"}, "group", "kind", "namespace", "name", "port", "sectionName")
	backendFields   = []string{"group", "kind", "name", "namespace", "port"}
	headerFilter    = []string{"set.name", "set.value", "add.name", "add.value", "remove"}
	gatewayWhy      = map[string]string{
		"spec.hostnames":                               "in mesh mode a route applies to the requests addressed to its parent Service, whatever the host",
		"spec.rules.sessionPersistence":                "session persistence is not implemented (a DestinationRule's consistentHash comes close)",
		"spec.rules.filters.extensionRef":              "extension filters are not implemented",
		"spec.rules.backendRefs.filters.requestMirror": "only header modifiers are implemented per backend",
		"spec.rules.backendRefs.filters.extensionRef":  "extension filters are not implemented",
	}
	httpRouteWhy = merged(gatewayWhy, map[string]string{
		"spec.rules.filters.externalAuth":                "external authorization is not implemented",
		"spec.rules.backendRefs.filters.requestRedirect": "only header modifiers are implemented per backend",
		"spec.rules.backendRefs.filters.urlRewrite":      "only header modifiers are implemented per backend",
		"spec.rules.backendRefs.filters.cors":            "only header modifiers are implemented per backend",
		"spec.rules.backendRefs.filters.externalAuth":    "only header modifiers are implemented per backend",
	})
	gatewayChecks = map[string]valueCheck{
		"spec.parentRefs":                             serviceRef("a parent"),
		"spec.rules.backendRefs":                      serviceRef("a backend"),
		"spec.rules.filters.requestMirror.backendRef": serviceRef("a mirror backend"),
	}
)

var httpRouteFields = newFieldTable(
	slices.Concat(
		parentRefFields,
		[]string{"spec.rules.name", "spec.rules.matches.path.type", "spec.rules.matches.path.value",
			"spec.rules.matches.method"},
		prefixed([]string{"spec.rules.matches.headers", "spec.rules.matches.queryParams"}, "type", "name", "value"),
		[]string{"spec.rules.filters.type", "spec.rules.backendRefs.filters.type"},
		prefixed([]string{"spec.rules.filters.requestHeaderModifier", "spec.rules.filters.responseHeaderModifier",
			"spec.rules.backendRefs.filters.requestHeaderModifier", "spec.rules.backendRefs.filters.responseHeaderModifier"}, headerFilter...),
		prefixed([]string{"spec.rules.filters.requestMirror.backendRef"}, backendFields...),
		[]string{"spec.rules.filters.requestMirror.percent", "spec.rules.filters.requestMirror.fraction.numerator",
			"spec.rules.filters.requestMirror.fraction.denominator"},
		prefixed([]string{"spec.rules.filters.requestRedirect"}, "scheme", "hostname", "port", "statusCode",
			"path.type", "path.replaceFullPath", "path.replacePrefixMatch"),
		prefixed([]string{"spec.rules.filters.urlRewrite"}, "hostname", "path.type", "path.replaceFullPath", "path.replacePrefixMatch"),
		prefixed([]string{"spec.rules.filters.cors"}, "allowOrigins", "allowCredentials", "allowMethods", "allowHeaders",
			"exposeHeaders", "maxAge"),
		prefixed([]string{"spec.rules.backendRefs"}, append(backendFields, "weight")...),
		[]string{"spec.rules.timeouts.request", "spec.rules.timeouts.backendRequest"},
		[]string{"spec.rules.retry.codes", "spec.rules.retry.attempts", "spec.rules.retry.backoff"},
	),
	httpRouteWhy,
	gatewayChecks,
)

var grpcRouteFields = newFieldTable(
	slices.Concat(
		parentRefFields,
		[]string{"spec.rules.name", "spec.rules.matches.method.type", "spec.rules.matches.method.service",
			"spec.rules.matches.method.method"},
		prefixed([]string{"spec.rules.matches.headers"}, "type", "name", "value"),
		[]string{"spec.rules.filters.type", "spec.rules.backendRefs.filters.type"},
		prefixed([]string{"spec.rules.filters.requestHeaderModifier", "spec.rules.filters.responseHeaderModifier",
			"spec.rules.backendRefs.filters.requestHeaderModifier", "spec.rules.backendRefs.filters.responseHeaderModifier"}, headerFilter...),
		prefixed([]string{"spec.rules.filters.requestMirror.backendRef"}, backendFields...),
		[]string{"spec.rules.filters.requestMirror.percent", "spec.rules.filters.requestMirror.fraction.numerator",
			"spec.rules.filters.requestMirror.fraction.denominator"},
		prefixed([]string{"spec.rules.backendRefs"}, append(backendFields, "weight")...),
	),
	gatewayWhy,
	gatewayChecks,
)

var peerAuthenticationFields = newFieldTable(
	[]string{"spec.selector.matchLabels", "spec.mtls.mode", "spec.portLevelMtls.*.mode"},
	map[string]string{},
	nil,
)

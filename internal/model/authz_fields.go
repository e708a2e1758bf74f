package model

import "slices"

// The fields of the security kinds of issue 5 that Trellis implements
// (docs/authorization.md lists the same; TestDocsListEveryField).

var targetRefFields = prefixed([]string{"spec.targetRef", "spec.targetRefs"}, "group", "kind", "name", "namespace")

var authorizationPolicyFields = newFieldTable(
	slices.Concat(
		[]string{"spec.selector.matchLabels", "spec.action", "spec.provider.name"},
		targetRefFields,
		prefixed([]string{"spec.rules.from.source"},
			"principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
			"namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
			"trustDomains", "notTrustDomains", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"),
		prefixed([]string{"spec.rules.to.operation"},
			"hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"),
		[]string{"spec.rules.when.key", "spec.rules.when.values", "spec.rules.when.notValues"},
	),
	map[string]string{},
	nil,
)

var requestAuthenticationFields = newFieldTable(
	slices.Concat(
		[]string{"spec.selector.matchLabels"},
		targetRefFields,
		prefixed([]string{"spec.jwtRules"},
			"issuer", "audiences", "jwks", "jwksUri", "fromHeaders.name", "fromHeaders.prefix", "fromParams",
			"forwardOriginalToken", "outputPayloadToHeader", "outputClaimToHeaders.header", "outputClaimToHeaders.claim"),
	),
	map[string]string{
		"spec.jwtRules.fromCookies":          "tokens in cookies are not implemented (CSRF exposure); send them in a header",
		"spec.jwtRules.timeout":              "the control plane fetches jwksUri with its own timeout (trellis control --jwks-timeout)",
		"spec.jwtRules.spaceDelimitedClaims": "space-delimited claims are not implemented; claims match as strings or lists of strings",
	},
	nil,
)

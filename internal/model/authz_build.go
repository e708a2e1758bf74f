package model

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	securityapi "istio.io/api/security/v1beta1"
	typeapi "istio.io/api/type/v1beta1"
	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
)

// addAuthorizationPolicies translates the AuthorizationPolicies of cfg. A value that
// cannot be translated is reported; the rule is then left out of an ALLOW or AUDIT
// policy (it never matches) and the match dropped from a DENY or CUSTOM rule (it
// matches more), so that a mistake never opens access.
func (b *builder) addAuthorizationPolicies(aps []config.AuthorizationPolicy) {
	for _, ap := range aps {
		obj := objectRef("AuthorizationPolicy", &ap.ObjectMeta, ap.Pos)
		spec := &ap.Spec
		pol := &AuthzPolicy{
			Source:    obj.Kind + " " + obj.Namespace + "/" + obj.Name,
			Namespace: obj.Namespace,
			Name:      obj.Name,
			Action:    actionOf(spec.GetAction()),
			Provider:  spec.GetProvider().GetName(),
			Rules:     []*AuthzRule{},
			obj:       obj,
		}
		var ok bool
		pol.Scope, pol.Selector, pol.selector, pol.Services, ok = b.policyScope(obj, spec.GetSelector(), spec.GetTargetRef(), spec.GetTargetRefs())
		if !ok {
			continue
		}
		if pol.Action == AuthzCustom && !b.hasProvider(pol.Provider) {
			b.configErrorf(obj, "spec.provider.name", "no external authorizer %q is configured (trellis control --ext-authz %s=HOST:PORT); "+
				"the requests this policy matches are denied", pol.Provider, pol.Provider)
		}
		lenient := pol.Action == AuthzDeny || pol.Action == AuthzCustom
		for i, r := range spec.GetRules() {
			t := &ruleTranslator{b: b, obj: obj, ns: obj.Namespace, field: fmt.Sprintf("spec.rules[%d]", i)}
			rule := t.rule(i, r)
			if t.invalid && !lenient {
				continue
			}
			pol.Rules = append(pol.Rules, rule)
		}
		pol.scopeAt = scopeField(pol.Scope, spec.GetTargetRef() != nil)
		b.mesh.AuthzPolicies = append(b.mesh.AuthzPolicies, pol)
	}
}

func (b *builder) hasProvider(name string) bool {
	return slices.ContainsFunc(b.opts.extAuthz, func(p ExtAuthzProvider) bool { return p.Name == name })
}

func actionOf(a securityapi.AuthorizationPolicy_Action) AuthzAction {
	switch a {
	case securityapi.AuthorizationPolicy_DENY:
		return AuthzDeny
	case securityapi.AuthorizationPolicy_AUDIT:
		return AuthzAudit
	case securityapi.AuthorizationPolicy_CUSTOM:
		return AuthzCustom
	}
	return AuthzAllow
}

// policyScope resolves the scope of a security policy: targetRefs (Services of its
// namespace), a selector, or its namespace (the whole mesh in the root namespace).
func (b *builder) policyScope(obj config.ObjectRef, sel *typeapi.WorkloadSelector, ref *typeapi.PolicyTargetReference,
	refs []*typeapi.PolicyTargetReference) (PeerAuthScope, map[string]string, labels.Selector, []string, bool) {
	field := "spec.targetRefs"
	if ref != nil {
		refs, field = []*typeapi.PolicyTargetReference{ref}, "spec.targetRef"
	}
	if len(refs) > 0 {
		var services []string
		for i, r := range refs {
			f := field
			if field == "spec.targetRefs" {
				f = fmt.Sprintf("%s[%d]", field, i)
			}
			if r.GetKind() != "Service" || (r.GetGroup() != "" && r.GetGroup() != "core") {
				b.configErrorf(obj, f+".kind", "only a Service (group \"\") can be targeted, not %s %q; the policy is ignored", r.GetKind(), r.GetGroup())
				return "", nil, nil, nil, false
			}
			if r.GetNamespace() != "" && r.GetNamespace() != obj.Namespace {
				b.configErrorf(obj, f+".namespace", "a policy targets Services of its own namespace only; the policy is ignored")
				return "", nil, nil, nil, false
			}
			services = append(services, obj.Namespace+"/"+r.GetName())
		}
		slices.Sort(services)
		return ScopeService, nil, nil, slices.Compact(services), true
	}
	if m := sel.GetMatchLabels(); len(m) > 0 {
		return ScopeWorkload, m, labels.SelectorFromSet(m), nil, true
	}
	if obj.Namespace == b.opts.rootNamespace {
		return ScopeMesh, nil, nil, nil, true
	}
	return ScopeNamespace, nil, nil, nil, true
}

// ruleTranslator translates one rule, remembering whether a value was invalid.
type ruleTranslator struct {
	b       *builder
	obj     config.ObjectRef
	ns      string
	field   string
	invalid bool
}

func (t *ruleTranslator) errorf(field, format string, args ...any) {
	t.invalid = true
	t.b.configErrorf(t.obj, field, format, args...)
}

func (t *ruleTranslator) rule(i int, r *securityapi.Rule) *AuthzRule {
	rule := &AuthzRule{Index: i}
	for j, f := range r.GetFrom() {
		rule.From = append(rule.From, t.source(fmt.Sprintf("%s.from[%d].source", t.field, j), f.GetSource()))
	}
	for j, to := range r.GetTo() {
		rule.To = append(rule.To, t.operation(fmt.Sprintf("%s.to[%d].operation", t.field, j), to.GetOperation()))
	}
	for j, c := range r.GetWhen() {
		rule.When = append(rule.When, t.condition(fmt.Sprintf("%s.when[%d]", t.field, j), c)...)
	}
	return rule
}

// add appends a match of values (parsed by parse) unless there are none or one is
// invalid (then it is reported and the match left out).
func (t *ruleTranslator) add(out *[]*AuthzMatch, attr Attr, key []string, not bool, field string, vals []string,
	parse func(string) (AuthzValue, error)) {
	if len(vals) == 0 {
		return
	}
	m := &AuthzMatch{Attr: attr, Key: key, Not: not, Field: field}
	for i, v := range vals {
		av, err := parse(v)
		if err != nil {
			t.errorf(fmt.Sprintf("%s[%d]", field, i), "%v", err)
			return
		}
		m.Values = append(m.Values, av)
	}
	*out = append(*out, m)
}

func (t *ruleTranslator) source(field string, s *securityapi.Source) []*AuthzMatch {
	out := []*AuthzMatch{}
	both := func(attr Attr, name string, pos, neg []string, parse func(string) (AuthzValue, error)) {
		t.add(&out, attr, nil, false, field+"."+name, pos, parse)
		t.add(&out, attr, nil, true, field+".not"+strings.ToUpper(name[:1])+name[1:], neg, parse)
	}
	t.noteNames(field+".principals", s.GetPrincipals(), false)
	t.noteNames(field+".notPrincipals", s.GetNotPrincipals(), false)
	t.noteNames(field+".namespaces", s.GetNamespaces(), true)
	t.noteNames(field+".notNamespaces", s.GetNotNamespaces(), true)
	both(AttrPrincipal, "principals", s.GetPrincipals(), s.GetNotPrincipals(), principalValue)
	both(AttrRequestPrincipal, "requestPrincipals", s.GetRequestPrincipals(), s.GetNotRequestPrincipals(), stringValue)
	both(AttrPrincipal, "namespaces", s.GetNamespaces(), s.GetNotNamespaces(), namespaceValue)
	both(AttrPrincipal, "serviceAccounts", s.GetServiceAccounts(), s.GetNotServiceAccounts(), t.serviceAccountValue)
	both(AttrPrincipal, "trustDomains", s.GetTrustDomains(), s.GetNotTrustDomains(), trustDomainValue)
	both(AttrSourceIP, "ipBlocks", s.GetIpBlocks(), s.GetNotIpBlocks(), cidrValue)
	both(AttrRemoteIP, "remoteIpBlocks", s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks(), cidrValue)
	return out
}

func (t *ruleTranslator) operation(field string, o *securityapi.Operation) []*AuthzMatch {
	out := []*AuthzMatch{}
	both := func(attr Attr, name string, pos, neg []string, parse func(string) (AuthzValue, error)) {
		t.add(&out, attr, nil, false, field+"."+name, pos, parse)
		t.add(&out, attr, nil, true, field+".not"+strings.ToUpper(name[:1])+name[1:], neg, parse)
	}
	both(AttrHost, "hosts", o.GetHosts(), o.GetNotHosts(), hostValue)
	both(AttrDestinationPort, "ports", o.GetPorts(), o.GetNotPorts(), portValue)
	both(AttrMethod, "methods", o.GetMethods(), o.GetNotMethods(), stringValue)
	both(AttrPath, "paths", o.GetPaths(), o.GetNotPaths(), pathValue)
	return out
}

// claimKey matches request.auth.claims[a][b]...
var claimKey = regexp.MustCompile(`^request\.auth\.claims((?:\[[^\[\]]+\])+)$`)

func (t *ruleTranslator) condition(field string, c *securityapi.Condition) []*AuthzMatch {
	var out []*AuthzMatch
	key := c.GetKey()
	var attr Attr
	var path []string
	parse := stringValue
	switch {
	case strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]") && len(key) > len("request.headers[]"):
		attr, path = AttrHeader, []string{strings.ToLower(key[len("request.headers[") : len(key)-1])}
	case key == "source.ip":
		attr, parse = AttrSourceIP, cidrValue
	case key == "remote.ip":
		attr, parse = AttrRemoteIP, cidrValue
	case key == "source.namespace":
		attr, parse = AttrPrincipal, namespaceValue
		t.noteNames(field+".values", c.GetValues(), true)
		t.noteNames(field+".notValues", c.GetNotValues(), true)
	case key == "source.principal":
		attr, parse = AttrPrincipal, principalValue
		t.noteNames(field+".values", c.GetValues(), false)
		t.noteNames(field+".notValues", c.GetNotValues(), false)
	case key == "request.auth.principal":
		attr = AttrRequestPrincipal
	case key == "request.auth.audiences":
		attr, path = AttrClaim, []string{"aud"}
	case key == "request.auth.presenter":
		attr, path = AttrClaim, []string{"azp"}
	case claimKey.MatchString(key):
		attr = AttrClaim
		inner := claimKey.FindStringSubmatch(key)[1]
		path = strings.Split(strings.Trim(inner, "[]"), "][")
	case key == "destination.port":
		attr, parse = AttrDestinationPort, portValue
	case key == "connection.sni":
		attr = AttrSNI
	default:
		t.errorf(field+".key", "condition key %q is not supported (supported: request.headers[NAME], source.ip, remote.ip, source.namespace, "+
			"source.principal, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], "+
			"destination.port, connection.sni)", key)
		return nil
	}
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		t.errorf(field, "a condition needs values or notValues")
		return nil
	}
	t.add(&out, attr, path, false, field+".values", c.GetValues(), parse)
	t.add(&out, attr, path, true, field+".notValues", c.GetNotValues(), parse)
	return out
}

// noteNames remembers the exact namespaces (or principals) of a field, which
// checkNames compares with the known workloads.
func (t *ruleTranslator) noteNames(field string, vals []string, namespaces bool) {
	for i, v := range vals {
		if v == "" || strings.Contains(v, "*") {
			continue
		}
		r := nameRef{obj: t.obj, field: fmt.Sprintf("%s[%d]", field, i)}
		if namespaces {
			r.namespace = v
		} else {
			r.principal = v
		}
		t.b.nameRefs = append(t.b.nameRefs, r)
	}
}

// stringValue is Istio's value syntax: "*" presence, "abc*" prefix, "*abc" suffix,
// else exact.
func stringValue(v string) (AuthzValue, error) {
	switch {
	case v == "":
		return AuthzValue{}, fmt.Errorf("empty value")
	case v == "*":
		return AuthzValue{Present: true}, nil
	case strings.HasPrefix(v, "*"):
		return AuthzValue{Suffix: v[1:]}, nil
	case strings.HasSuffix(v, "*"):
		return AuthzValue{Prefix: v[:len(v)-1]}, nil
	}
	return AuthzValue{Exact: v}, nil
}

func hostValue(v string) (AuthzValue, error) {
	av, err := stringValue(v)
	av.IgnoreCase = !av.Present
	return av, err
}

// principalValue turns "<td>/ns/<ns>/sa/<sa>" into a match on the SPIFFE ID.
func principalValue(v string) (AuthzValue, error) {
	av, err := stringValue(v)
	switch {
	case err != nil:
	case av.Exact != "":
		av.Exact = "spiffe://" + av.Exact
	case av.Prefix != "":
		av.Prefix = "spiffe://" + av.Prefix
	case av.Present:
		av = AuthzValue{Regex: ".+"}
	}
	return av, err
}

const (
	spiffeTD  = `spiffe://[^/]+`
	spiffeSeg = `[^/]+`
)

// namespaceValue matches the namespace part of the SPIFFE ID.
func namespaceValue(v string) (AuthzValue, error) {
	av, err := stringValue(v)
	if err != nil {
		return av, err
	}
	ns := ""
	switch {
	case av.Present:
		ns = spiffeSeg
	case av.Prefix != "":
		ns = regexp.QuoteMeta(av.Prefix) + `[^/]*`
	case av.Suffix != "":
		ns = `[^/]*` + regexp.QuoteMeta(av.Suffix)
	default:
		ns = regexp.QuoteMeta(av.Exact)
	}
	return AuthzValue{Regex: spiffeTD + "/ns/" + ns + "/sa/" + spiffeSeg}, nil
}

// serviceAccountValue is "<ns>/<sa>", or "<sa>" in the policy's namespace; no
// wildcards.
func (t *ruleTranslator) serviceAccountValue(v string) (AuthzValue, error) {
	if strings.Contains(v, "*") || v == "" {
		return AuthzValue{}, fmt.Errorf("%q: a service account is <namespace>/<name> or <name>, without wildcards", v)
	}
	ns, sa, ok := strings.Cut(v, "/")
	if !ok {
		ns, sa = t.ns, v
	}
	if ns == "" || sa == "" || strings.Contains(sa, "/") {
		return AuthzValue{}, fmt.Errorf("%q: a service account is <namespace>/<name> or <name>", v)
	}
	return AuthzValue{Regex: spiffeTD + "/ns/" + regexp.QuoteMeta(ns) + "/sa/" + regexp.QuoteMeta(sa)}, nil
}

// trustDomainValue matches the trust domain of the SPIFFE ID.
func trustDomainValue(v string) (AuthzValue, error) {
	av, err := stringValue(v)
	if err != nil {
		return av, err
	}
	switch {
	case av.Present:
		return AuthzValue{Regex: spiffeTD + "/.*"}, nil
	case av.Prefix != "":
		return AuthzValue{Regex: "spiffe://" + regexp.QuoteMeta(av.Prefix) + `[^/]*/.*`}, nil
	case av.Suffix != "":
		return AuthzValue{Regex: `spiffe://[^/]*` + regexp.QuoteMeta(av.Suffix) + `/.*`}, nil
	}
	return AuthzValue{Prefix: "spiffe://" + av.Exact + "/"}, nil
}

func cidrValue(v string) (AuthzValue, error) {
	if p, err := netip.ParsePrefix(v); err == nil {
		if p != p.Masked() {
			return AuthzValue{}, fmt.Errorf("%q: not a block (host bits set; did you mean %s?)", v, p.Masked())
		}
		return AuthzValue{CIDR: p.String()}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return AuthzValue{}, fmt.Errorf("%q is neither an IP address nor a CIDR block", v)
	}
	return AuthzValue{CIDR: netip.PrefixFrom(a, a.BitLen()).String()}, nil
}

func portValue(v string) (AuthzValue, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return AuthzValue{}, fmt.Errorf("%q is not a port (1..65535)", v)
	}
	return AuthzValue{Port: uint32(n)}, nil
}

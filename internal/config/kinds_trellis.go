package config

import (
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"trellis.dev/trellis/internal/api/v1alpha1"
)

// The Trellis policy kinds beyond Workload: RateLimitPolicy. They are plain Go structs
// (internal/api/v1alpha1), walked like the Kubernetes kinds, then defaulted and
// validated thoroughly, as every Trellis kind is.

// RateLimitPolicy is a decoded, defaulted and validated RateLimitPolicy document.
type RateLimitPolicy struct {
	Pos Position
	*v1alpha1.RateLimitPolicy
}

func (o RateLimitPolicy) ref() ObjectRef {
	return refOf(v1alpha1.KindRateLimitPolicy, &o.ObjectMeta, o.Pos)
}

// MaxRateLimitPeriod is the longest period a rate limit may count over.
const MaxRateLimitPeriod = 24 * time.Hour

func trellisKinds() map[typeKey]decodeFunc {
	return map[typeKey]decodeFunc{
		{v1alpha1.GroupVersion, v1alpha1.KindRateLimitPolicy}: decodeObject(checkRateLimitPolicy,
			func(s *Set, p Position, o *v1alpha1.RateLimitPolicy) {
				s.RateLimitPolicies = append(s.RateLimitPolicies, RateLimitPolicy{p, o})
			}),
	}
}

// checkRateLimitPolicy defaults and validates a RateLimitPolicy.
func checkRateLimitPolicy(d *document, rp *v1alpha1.RateLimitPolicy) {
	defaultRateLimitPolicy(rp)
	spec := field("spec")
	validateTargetRefs(d, spec.key("targetRefs"), rp.Namespace, rp.Spec.TargetRefs)
	if len(rp.Spec.Rules) == 0 {
		d.errorf(spec.key("rules"), "required: at least one rule")
	}
	for i := range rp.Spec.Rules {
		validateRateLimitRule(d, spec.key("rules").index(i), &rp.Spec.Rules[i])
	}
}

func defaultRateLimitPolicy(rp *v1alpha1.RateLimitPolicy) {
	for i := range rp.Spec.Rules {
		r := &rp.Spec.Rules[i]
		if r.Scope == "" {
			r.Scope = v1alpha1.ScopeLocal
		}
		for j := range r.ClientSelectors {
			for k := range r.ClientSelectors[j].Headers {
				h := &r.ClientSelectors[j].Headers[k]
				if h.Type == "" {
					h.Type = v1alpha1.HeaderSelectorExact
				}
			}
		}
		for j := range r.Matches {
			if p := r.Matches[j].Path; p != nil && p.Type == "" {
				p.Type = v1alpha1.PathMatchPathPrefix
			}
		}
	}
}

// validateTargetRefs checks policy-attachment targetRefs: Service, HTTPRoute or the
// policy's own Namespace.
func validateTargetRefs(d *document, p fieldPath, namespace string, refs []v1alpha1.PolicyTargetRef) {
	if len(refs) == 0 {
		d.errorf(p, "required: at least one target (a Service, an HTTPRoute or the Namespace)")
	}
	seen := map[v1alpha1.PolicyTargetRef]int{}
	for i, ref := range refs {
		rp := p.index(i)
		if first, dup := seen[ref]; dup {
			d.errorf(rp, "duplicate target (also targetRefs[%d])", first)
		}
		seen[ref] = i
		wantGroup := ""
		switch ref.Kind {
		case "Service", "Namespace":
		case "HTTPRoute":
			wantGroup = GatewayGroup
		case "":
			d.errorf(rp.key("kind"), "required: Service, HTTPRoute or Namespace")
			continue
		default:
			d.errorf(rp.key("kind"), "unsupported kind %q: use Service, HTTPRoute or Namespace", ref.Kind)
			continue
		}
		if ref.Group != wantGroup {
			d.errorf(rp.key("group"), "group of a %s is %q, not %q", ref.Kind, wantGroup, ref.Group)
		}
		switch {
		case ref.Name == "":
			d.errorf(rp.key("name"), "required")
		case ref.Kind == "Namespace" && ref.Name != namespace:
			d.errorf(rp.key("name"), "a policy can only target its own namespace %q, not %q", namespace, ref.Name)
		case ref.Kind == "Service":
			checkAll(d, rp.key("name"), serviceName(ref.Name))
		default:
			checkAll(d, rp.key("name"), utilvalidation.IsDNS1123Subdomain(ref.Name))
		}
	}
}

func validateRateLimitRule(d *document, p fieldPath, r *v1alpha1.RateLimitRule) {
	switch r.Scope {
	case v1alpha1.ScopeLocal, v1alpha1.ScopeGlobal:
	default:
		d.errorf(p.key("scope"), "unknown scope %q: use Local or Global", r.Scope)
	}
	validateRateLimitValue(d, p.key("limit"), r.Limit)
	headers := map[string]fieldPath{}
	for i, sel := range r.ClientSelectors {
		sp := p.key("clientSelectors").index(i)
		if len(sel.Headers) == 0 && len(sel.SourcePrincipals) == 0 {
			d.errorf(sp, "empty selector: give headers or sourcePrincipals")
		}
		for j, h := range sel.Headers {
			hp := sp.key("headers").index(j)
			validateHeaderName(d, hp.key("name"), h.Name)
			lower := strings.ToLower(h.Name)
			if first, dup := headers[lower]; dup && h.Name != "" {
				d.errorf(hp.key("name"), "header %q is already selected at %s", h.Name, first)
			}
			headers[lower] = hp
			switch h.Type {
			case v1alpha1.HeaderSelectorExact:
				if h.Value == "" {
					d.errorf(hp.key("value"), "required for type Exact")
				}
			case v1alpha1.HeaderSelectorDistinct:
				if h.Value != "" {
					d.errorf(hp.key("value"), "not allowed for type Distinct (every value has its own budget)")
				}
			default:
				d.errorf(hp.key("type"), "unknown type %q: use Distinct or Exact", h.Type)
			}
		}
		for j, pr := range sel.SourcePrincipals {
			if pr == "" || strings.ContainsAny(pr, " \t\r\n") {
				d.errorf(sp.key("sourcePrincipals").index(j), "%q is not a principal such as cluster.local/ns/shop/sa/frontend, or *", pr)
			}
		}
	}
	for i, m := range r.Matches {
		validateRateLimitMatch(d, p.key("matches").index(i), m)
	}
}

func validateRateLimitValue(d *document, p fieldPath, v v1alpha1.RateLimitValue) {
	if v.Requests == 0 {
		d.errorf(p.key("requests"), "required: at least 1")
	}
	switch per := v.Per.Duration; {
	case per == 0:
		d.errorf(p.key("per"), "required: a period such as 1s, 1m or 1h")
	case per < time.Second || per%time.Second != 0:
		d.errorf(p.key("per"), "%s is not a whole number of seconds (such as 1s, 30s, 1m, 1h)", per)
	case per > MaxRateLimitPeriod:
		d.errorf(p.key("per"), "%s is longer than %s", per, MaxRateLimitPeriod)
	}
}

func validateRateLimitMatch(d *document, p fieldPath, m v1alpha1.RateLimitMatch) {
	if m.Path == nil && m.Method == "" && len(m.Headers) == 0 {
		d.errorf(p, "empty match: give path, method or headers (a rule without matches applies to every request)")
	}
	if m.Path != nil {
		switch m.Path.Type {
		case v1alpha1.PathMatchExact, v1alpha1.PathMatchPathPrefix:
		default:
			d.errorf(p.key("path").key("type"), "unknown type %q: use Exact or PathPrefix", m.Path.Type)
		}
		if !strings.HasPrefix(m.Path.Value, "/") {
			d.errorf(p.key("path").key("value"), "%q does not start with /", m.Path.Value)
		}
	}
	if m.Method != "" && (!httpguts.ValidHeaderFieldName(m.Method) || strings.ToUpper(m.Method) != m.Method) {
		d.errorf(p.key("method"), "%q is not an HTTP method such as GET", m.Method)
	}
	for i, h := range m.Headers {
		validateHeaderName(d, p.key("headers").index(i).key("name"), h.Name)
	}
}

func validateHeaderName(d *document, p fieldPath, name string) {
	switch {
	case name == "":
		d.errorf(p, "required")
	case !httpguts.ValidHeaderFieldName(name):
		d.errorf(p, "%q is not a valid HTTP header name", name)
	}
}

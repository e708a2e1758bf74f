package authz

import (
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
)

// Filter is one compiled RBAC filter (HTTP or network): enforcing rules, shadow
// rules, or both.
type Filter struct {
	// Rules decide; nil lets everything through.
	Rules *Engine
	// Shadow rules only record, in the RBAC metadata, which policy matched
	// (<ShadowPrefix>shadow_effective_policy_id) and the result
	// (<ShadowPrefix>shadow_engine_result): how a CUSTOM policy's rules select the
	// requests for the external authorizer.
	Shadow       *Engine
	ShadowPrefix string
}

// CompileHTTP compiles an envoy.filters.http.rbac configuration.
func CompileHTTP(cfg *httprbacv3.RBAC) (*Filter, error) {
	if err := only(cfg, "rules", "shadow_rules", "shadow_rules_stat_prefix"); err != nil {
		return nil, err
	}
	return compileFilter(cfg.GetRules(), cfg.GetShadowRules(), cfg.GetShadowRulesStatPrefix(), HTTPMode)
}

// CompileNetwork compiles an envoy.filters.network.rbac configuration.
func CompileNetwork(cfg *netrbacv3.RBAC) (*Filter, error) {
	if err := only(cfg, "rules", "shadow_rules", "shadow_rules_stat_prefix", "stat_prefix"); err != nil {
		return nil, err
	}
	return compileFilter(cfg.GetRules(), cfg.GetShadowRules(), cfg.GetShadowRulesStatPrefix(), NetworkMode)
}

func compileFilter(rules, shadow *rbacv3.RBAC, prefix string, mode Mode) (*Filter, error) {
	f := &Filter{ShadowPrefix: prefix}
	var err error
	if rules != nil {
		if f.Rules, err = Compile(rules, mode); err != nil {
			return nil, under("rules", err)
		}
	}
	if shadow != nil {
		if f.Shadow, err = Compile(shadow, mode); err != nil {
			return nil, under("shadow_rules", err)
		}
	}
	return f, nil
}

// Decide runs the filter on r: the shadow rules record their result, then the
// rules decide. It returns false when r must be refused.
func (f *Filter) Decide(r *Request) bool {
	if f.Shadow != nil {
		if name, ok := f.Shadow.Match(r); ok {
			r.Metadata.SetRBAC(f.ShadowPrefix+"shadow_effective_policy_id", name)
			result := "allowed"
			if f.Shadow.Action == Deny {
				result = "denied"
			}
			r.Metadata.SetRBAC(f.ShadowPrefix+"shadow_engine_result", result)
		}
	}
	if f.Rules == nil {
		return true
	}
	return f.Rules.Allowed(r)
}

package model

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/jwks"
)

// JWTPolicy is one RequestAuthentication in force.
type JWTPolicy struct {
	// Source names the document: "RequestAuthentication default/jwt".
	Source    string            `json:"source"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Scope     PeerAuthScope     `json:"scope"`
	Selector  map[string]string `json:"selector,omitempty"`
	Services  []string          `json:"services,omitempty"`
	Rules     []*JWTRule        `json:"rules"`

	selector labels.Selector
	obj      config.ObjectRef
	scopeAt  string // the field that sets the scope, for warnings
}

// JWTRule is one jwtRules entry: how to find, verify and pass on a token of one
// issuer.
type JWTRule struct {
	// Provider names the rule: "<namespace>/<name>/<index>".
	Provider  string   `json:"provider"`
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences,omitempty"`
	// JWKS is the key set (JSON): jwks, or the document fetched from JWKSURI, or,
	// until one is, UnusableJWKS.
	JWKS string `json:"jwks"`
	// JWKSURI is where the key set comes from, if not inline.
	JWKSURI string `json:"jwksUri,omitempty"`
	// FromHeaders and FromParams are where the token is looked for; both empty: the
	// Authorization header with the prefix "Bearer " and the parameter access_token.
	FromHeaders           []JWTHeader     `json:"fromHeaders,omitempty"`
	FromParams            []string        `json:"fromParams,omitempty"`
	ForwardOriginalToken  bool            `json:"forwardOriginalToken,omitempty"`
	OutputPayloadToHeader string          `json:"outputPayloadToHeader,omitempty"`
	OutputClaimToHeaders  []ClaimToHeader `json:"outputClaimToHeaders,omitempty"`
}

// JWTHeader is a header that carries the token, after Prefix.
type JWTHeader struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix,omitempty"`
}

// ClaimToHeader copies a claim of a verified token into a request header.
type ClaimToHeader struct {
	Header string `json:"header"`
	Claim  string `json:"claim"`
}

// UnusableJWKS stands for a key set that could not be fetched: one RSA key that
// nobody holds, so that every token of that issuer fails verification (401) while
// requests without a token still pass, as Istio does.
const UnusableJWKS = `{"keys":[{"kty":"RSA","kid":"trellis-unusable","alg":"RS256","use":"sig","e":"AQAB",` +
	`"n":"qn0N9mvgiJYoUh0f_gkB6vnB4_LxAhBgDatt98F95ka8YCT1zBrO3vuvRQUKJq2lu80Pt58n2NIi1cqQSo1j4N4hdr1MySLR1BHVrUbszPkqyyWuxV4iQZbOpouC-uI6HU3AT1GVFNMpNjphj4TNPoNPgdcN8daAKYxAcAyDH8I` +
	`345nEhfLATWiMzfaBEuyRC2CJ_UEk9fdEThdSFwrh4oOW13P2NfHVU6JIbBAt0e-szx9vmYe0qNqi6Ug7ASNzHRv6raUOkRQy2_oqHlACQuKy8lkvSZtsycDXNu1bSP_6Cj0mdiv0Qokyr6qbPmkZarNK8YIS2-8__IQWHvu0Hw"}]}`

// JWTFor returns the RequestAuthentications that apply to a workload port of the
// proxy, sorted by namespace/name.
func (m *Mesh) JWTFor(p *Proxy, port InboundPort) []*JWTPolicy {
	var out []*JWTPolicy
	for _, pol := range m.JWTPolicies {
		if m.applies(pol.Scope, pol.Namespace, pol.selector, pol.Services, p, port) {
			out = append(out, pol)
		}
	}
	return out
}

// JWKSURIs lists, sorted and without duplicates, the jwksUri of every
// RequestAuthentication in cfg: what the control plane fetches for WithJWKS.
func JWKSURIs(cfg *config.Set) []string {
	if cfg == nil {
		return nil
	}
	var out []string
	for _, ra := range cfg.RequestAuthentications {
		for _, r := range ra.Spec.GetJwtRules() {
			if r.GetJwks() == "" && r.GetJwksUri() != "" {
				out = append(out, r.GetJwksUri())
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// addRequestAuthentications translates the RequestAuthentications of cfg.
func (b *builder) addRequestAuthentications(ras []config.RequestAuthentication) {
	for _, ra := range ras {
		obj := objectRef("RequestAuthentication", &ra.ObjectMeta, ra.Pos)
		spec := &ra.Spec
		pol := &JWTPolicy{
			Source:    obj.Kind + " " + obj.Namespace + "/" + obj.Name,
			Namespace: obj.Namespace,
			Name:      obj.Name,
			Rules:     []*JWTRule{},
			obj:       obj,
		}
		var ok bool
		pol.Scope, pol.Selector, pol.selector, pol.Services, ok = b.policyScope(obj, spec.GetSelector(), spec.GetTargetRef(), spec.GetTargetRefs())
		if !ok {
			continue
		}
		for i, r := range spec.GetJwtRules() {
			rule := &JWTRule{
				Provider:              fmt.Sprintf("%s/%s/%d", obj.Namespace, obj.Name, i),
				Issuer:                r.GetIssuer(),
				Audiences:             r.GetAudiences(),
				JWKS:                  r.GetJwks(),
				FromParams:            r.GetFromParams(),
				ForwardOriginalToken:  r.GetForwardOriginalToken(),
				OutputPayloadToHeader: r.GetOutputPayloadToHeader(),
			}
			for _, h := range r.GetFromHeaders() {
				rule.FromHeaders = append(rule.FromHeaders, JWTHeader{Name: h.GetName(), Prefix: h.GetPrefix()})
			}
			for _, c := range r.GetOutputClaimToHeaders() {
				rule.OutputClaimToHeaders = append(rule.OutputClaimToHeaders, ClaimToHeader{Header: c.GetHeader(), Claim: c.GetClaim()})
			}
			field := fmt.Sprintf("spec.jwtRules[%d]", i)
			if rule.JWKS != "" {
				if err := jwks.Check([]byte(rule.JWKS)); err != nil {
					b.configErrorf(obj, field+".jwks", "%v: no key can verify a token of %q, every one is refused", err, rule.Issuer)
					rule.JWKS = UnusableJWKS
				}
			}
			switch {
			case rule.JWKS != "" && r.GetJwksUri() != "":
				b.configErrorf(obj, field+".jwksUri", "jwks and jwksUri are both set; the inline jwks is used")
			case rule.JWKS == "" && r.GetJwksUri() == "":
				b.configErrorf(obj, field, "neither jwks nor jwksUri is set: no key can verify a token of %q, every one is refused", rule.Issuer)
				rule.JWKS = UnusableJWKS
			case rule.JWKS == "":
				rule.JWKSURI = r.GetJwksUri()
				rule.JWKS = UnusableJWKS
				if b.opts.jwks != nil {
					if doc, ok := b.opts.jwks(rule.JWKSURI); ok {
						rule.JWKS = doc
					} else {
						b.errorf("%s %s.jwksUri: the key set at %s is not available yet; tokens of %q are refused until it is",
							pol.Source, field, rule.JWKSURI, rule.Issuer)
					}
				}
			}
			pol.Rules = append(pol.Rules, rule)
		}
		pol.scopeAt = scopeField(pol.Scope, spec.GetTargetRef() != nil)
		b.mesh.JWTPolicies = append(b.mesh.JWTPolicies, pol)
	}
}

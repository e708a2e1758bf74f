package jwt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Skew is the clock skew allowed when checking exp and nbf.
const Skew = 60 * time.Second

// Provider configures one token issuer (a JwtProvider).
type Provider struct {
	// Name is the provider's key in the filter's providers map.
	Name string
	// Issuer is the iss a token must carry; empty: any.
	Issuer string
	// Audiences, when set, must hold one of the token's aud values.
	Audiences []string
	// JWKS is the JSON Web Key Set (local_jwks.inline_string).
	JWKS string
	// FromHeaders and FromParams are where the token is looked for, in order:
	// headers first.
	FromHeaders []HeaderLocation
	FromParams  []string
	// Forward keeps the token in the request; false removes the header it came in.
	Forward bool
	// ForwardPayloadHeader, if set, gets the verified payload, base64url.
	ForwardPayloadHeader string
	// ClaimToHeaders copy claims of a verified token to request headers.
	ClaimToHeaders []ClaimHeader
	// PayloadInMetadata is the key of the payload in the filter's dynamic metadata.
	PayloadInMetadata string
}

// HeaderLocation is a header that may carry a token, after Prefix.
type HeaderLocation struct {
	Name   string
	Prefix string
}

// ClaimHeader copies the claim Claim to the header Header.
type ClaimHeader struct {
	Header string
	Claim  string
}

// Requirement says which tokens a request must carry: a token that one of
// Providers verifies, or, with AllowMissing, no token at all.
type Requirement struct {
	Providers    []string
	AllowMissing bool
}

// Rule applies a requirement to the requests whose path starts with Prefix.
type Rule struct {
	Prefix      string
	Requirement Requirement
}

// Config is a jwt_authn filter's configuration.
type Config struct {
	Providers []Provider
	Rules     []Rule
}

// Filter is a compiled jwt_authn filter. It is immutable and safe for concurrent
// use.
type Filter struct {
	providers map[string]*provider
	order     []*provider // every provider, for "is there a token at all"
	rules     []rule
	// strip are the headers the filter sets, removed from every incoming request.
	strip []string
}

type provider struct {
	Provider
	keys    []jose.JSONWebKey
	headers []HeaderLocation // canonical names
}

type rule struct {
	prefix       string
	providers    []*provider
	allowMissing bool
}

// New compiles a configuration; the error names the provider or rule at fault.
func New(cfg Config) (*Filter, error) {
	f := &Filter{providers: map[string]*provider{}}
	seen := map[string]bool{}
	for _, pc := range cfg.Providers {
		keys, err := parseJWKS(pc.JWKS)
		if err != nil {
			return nil, fmt.Errorf("provider %q: local_jwks: %w", pc.Name, err)
		}
		p := &provider{Provider: pc, keys: keys}
		for _, h := range pc.FromHeaders {
			if h.Name == "" {
				return nil, fmt.Errorf("provider %q: from_headers: a name is required", pc.Name)
			}
			p.headers = append(p.headers, HeaderLocation{Name: http.CanonicalHeaderKey(h.Name), Prefix: h.Prefix})
		}
		for _, h := range append([]string{pc.ForwardPayloadHeader}, claimHeaders(pc.ClaimToHeaders)...) {
			if h = http.CanonicalHeaderKey(h); h != "" && !seen[h] {
				seen[h] = true
				f.strip = append(f.strip, h)
			}
		}
		f.providers[pc.Name] = p
		f.order = append(f.order, p)
	}
	for i, rc := range cfg.Rules {
		r := rule{prefix: rc.Prefix, allowMissing: rc.Requirement.AllowMissing}
		for _, name := range rc.Requirement.Providers {
			p := f.providers[name]
			if p == nil {
				return nil, fmt.Errorf("rules[%d]: provider %q is not configured", i, name)
			}
			r.providers = append(r.providers, p)
		}
		f.rules = append(f.rules, r)
	}
	return f, nil
}

func claimHeaders(cs []ClaimHeader) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Header
	}
	return out
}

// Outcome is what the filter decided about a request.
type Outcome uint8

const (
	// Pass: no rule applies, or no token and a missing one is allowed.
	Pass Outcome = iota
	// Verified: a provider verified the request's token.
	Verified
	// Missing: a token is required and there is none (401).
	Missing
	// Invalid: a token is present and no provider verifies it (401).
	Invalid
)

// Result is the filter's decision.
type Result struct {
	Outcome Outcome
	// Provider is the provider that verified the token.
	Provider string
	// Metadata is the filter's dynamic metadata: {<payload_in_metadata>: payload}.
	Metadata map[string]any
	// Err says why the token was refused (for the log; never sent to the client).
	Err error
}

// Authenticate runs the filter on r, whose path (normalized, without the query)
// chooses the rule. It removes the headers the filter sets from r and, for a
// verified token, sets them and removes the token unless forwarded.
func (f *Filter) Authenticate(r *http.Request, path string, now time.Time) Result {
	for _, h := range f.strip {
		if _, ok := r.Header[h]; ok {
			delete(r.Header, h)
		}
	}
	var rl *rule
	for i := range f.rules {
		if strings.HasPrefix(path, f.rules[i].prefix) {
			rl = &f.rules[i]
			break
		}
	}
	if rl == nil {
		return Result{Outcome: Pass}
	}
	var firstErr error
	for _, p := range rl.providers {
		tok, from, ok := p.token(r)
		if !ok {
			continue
		}
		payload, raw, err := p.verify(tok, now)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("provider %s: %w", p.Name, err)
			}
			continue
		}
		p.apply(r, from, payload, raw)
		res := Result{Outcome: Verified, Provider: p.Name}
		if p.PayloadInMetadata != "" {
			res.Metadata = map[string]any{p.PayloadInMetadata: payload}
		}
		return res
	}
	if firstErr != nil {
		return Result{Outcome: Invalid, Err: firstErr}
	}
	// No provider of the rule found a token. A token for another provider of the
	// filter counts as present: it is not "missing".
	if rl.allowMissing {
		for _, p := range f.order {
			if tok, _, ok := p.token(r); ok {
				if _, _, err := p.verify(tok, now); err != nil {
					return Result{Outcome: Invalid, Err: fmt.Errorf("provider %s: %w", p.Name, err)}
				}
				return Result{Outcome: Invalid, Err: fmt.Errorf("token of provider %s is not accepted here", p.Name)}
			}
		}
		return Result{Outcome: Pass}
	}
	return Result{Outcome: Missing, Err: errors.New("no token")}
}

// token finds the provider's token: its header locations, then its parameters,
// in order; the first value found is the token. from is the header it came from.
func (p *provider) token(r *http.Request) (tok, from string, ok bool) {
	for _, h := range p.headers {
		for _, v := range r.Header[h.Name] {
			if h.Prefix == "" {
				if v = strings.TrimSpace(v); v != "" {
					return v, h.Name, true
				}
				continue
			}
			if len(v) >= len(h.Prefix) && strings.EqualFold(v[:len(h.Prefix)], h.Prefix) {
				if t := strings.TrimSpace(v[len(h.Prefix):]); t != "" {
					return t, h.Name, true
				}
			}
		}
	}
	if len(p.FromParams) > 0 && r.URL.RawQuery != "" {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		for _, name := range p.FromParams {
			if v := q.Get(name); v != "" {
				return v, "", true
			}
		}
	}
	return "", "", false
}

// verify checks the token's signature with the provider's keys, then its issuer,
// audiences and validity period. It returns the payload and its encoded form.
func (p *provider) verify(tok string, now time.Time) (map[string]any, string, error) {
	if !compactForm(tok) {
		// go-jose skips white space inside a token: the signed bytes would not be the
		// ones forwarded (and a line break would reach the payload header).
		return nil, "", errors.New("malformed token: only base64url characters and dots are allowed")
	}
	if !canonicalParts(tok) {
		// go-jose verifies the signature over the parts re-encoded from their decoded
		// bytes, so a part whose last character carries stray low bits would verify
		// while its text is not the signed text: one signed token, many spellings.
		return nil, "", errors.New("malformed token: a part is not canonical base64url (stray bits in its last character)")
	}
	jws, err := jose.ParseSignedCompact(tok, Algorithms)
	if err != nil {
		return nil, "", fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", errors.New("malformed token: not one signature")
	}
	hdr := jws.Signatures[0].Header
	var body []byte
	verified := false
	for i := range p.keys {
		k := &p.keys[i]
		if hdr.KeyID != "" && k.KeyID != "" && k.KeyID != hdr.KeyID {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
			continue
		}
		if b, err := jws.Verify(k); err == nil {
			body, verified = b, true
			break
		}
	}
	if !verified {
		return nil, "", errors.New("signature not verified by any key")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var payload map[string]any
	if err := dec.Decode(&payload); err != nil || payload == nil {
		return nil, "", errors.New("payload is not a JSON object")
	}
	if p.Issuer != "" {
		if iss, _ := payload["iss"].(string); iss != p.Issuer {
			return nil, "", fmt.Errorf("issuer %q is not %q", iss, p.Issuer)
		}
	}
	if len(p.Audiences) > 0 && !audienceOK(payload["aud"], p.Audiences) {
		return nil, "", errors.New("audience not accepted")
	}
	if v, ok := payload["exp"]; ok {
		exp, ok := numericDate(v)
		if !ok {
			return nil, "", errors.New("exp is not a number")
		}
		if now.After(exp.Add(Skew)) {
			return nil, "", errors.New("token expired")
		}
	}
	if v, ok := payload["nbf"]; ok {
		nbf, ok := numericDate(v)
		if !ok {
			return nil, "", errors.New("nbf is not a number")
		}
		if now.Add(Skew).Before(nbf) {
			return nil, "", errors.New("token not yet valid")
		}
	}
	parts := strings.SplitN(tok, ".", 3)
	return payload, parts[1], nil
}

// compactForm reports whether tok is written with the characters of the JWS compact
// serialization only: base64url and the dots between its parts.
func compactForm(tok string) bool {
	for i := range len(tok) {
		switch c := tok[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// canonicalParts reports whether every dot-separated part of tok (written with
// base64url characters only; compactForm) is the canonical unpadded encoding of its
// bytes: a length of 1 modulo 4 is no encoding, and the bits the last character carries
// beyond the data (4 of them at 2 modulo 4, 2 at 3 modulo 4) must be zero.
func canonicalParts(tok string) bool {
	for part := range strings.SplitSeq(tok, ".") {
		if len(part) == 0 {
			continue
		}
		var stray byte
		switch len(part) % 4 {
		case 1:
			return false
		case 2:
			stray = 0x0f
		case 3:
			stray = 0x03
		default:
			continue
		}
		if base64URLValue(part[len(part)-1])&stray != 0 {
			return false
		}
	}
	return true
}

// base64URLValue is the 6-bit value of a base64url character.
func base64URLValue(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	}
	return 63 // '_'
}

func audienceOK(aud any, want []string) bool {
	var have []string
	switch a := aud.(type) {
	case string:
		have = []string{a}
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok {
				have = append(have, s)
			}
		}
	}
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// apply changes the request for a verified token: the token removed unless
// forwarded, the payload and claim headers set.
func (p *provider) apply(r *http.Request, from string, payload map[string]any, raw string) {
	if !p.Forward && from != "" {
		delete(r.Header, from)
	}
	if p.ForwardPayloadHeader != "" {
		r.Header.Set(p.ForwardPayloadHeader, raw)
	}
	for _, c := range p.ClaimToHeaders {
		if v, ok := claimValue(payload, c.Claim); ok {
			r.Header.Set(c.Header, v)
		}
	}
}

// claimValue renders a claim for a header: a string as it is, a number or a
// boolean in JSON, a list of strings joined with ",". Nested claims are
// addressed with dots ("a.b").
func claimValue(payload map[string]any, name string) (string, bool) {
	var v any = payload
	for _, k := range strings.Split(name, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = obj[k]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}

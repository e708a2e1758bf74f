package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fuzzNow is the clock of the fuzz targets, fixed so that the seeds stay what they
// are (valid, expired, not yet valid) whenever they are replayed.
var fuzzNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzKeys are fixed signing keys, so that a committed token's signature stays
// valid: an EC P-256 key (ES256) and an Ed25519 key (EdDSA). They exist only here.
func fuzzKeys(tb testing.TB) (*ecdsa.PrivateKey, ed25519.PrivateKey) {
	tb.Helper()
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return ec, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x17}, ed25519.SeedSize))
}

func fuzzJWKS(tb testing.TB, ec *ecdsa.PrivateKey, ed ed25519.PrivateKey) string {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &ec.PublicKey, KeyID: "ec1", Use: "sig"},
		{Key: ed.Public(), KeyID: "ed1", Algorithm: string(jose.EdDSA)},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func fuzzFilter(tb testing.TB, jwks string) (*Filter, error) {
	tb.Helper()
	return New(Config{
		Providers: []Provider{{
			Name: "p", Issuer: issuer, Audiences: []string{"api"}, JWKS: jwks,
			FromHeaders:          []HeaderLocation{{Name: "Authorization", Prefix: "Bearer "}},
			FromParams:           []string{"token"},
			ForwardPayloadHeader: "x-jwt-payload",
			ClaimToHeaders:       []ClaimHeader{{Header: "x-jwt-sub", Claim: "sub"}, {Header: "x-jwt-groups", Claim: "groups"}},
			PayloadInMetadata:    "payload",
		}},
		Rules: []Rule{{Prefix: "/", Requirement: Requirement{Providers: []string{"p"}}}},
	})
}

// fuzzTokens are the seeds: well-signed tokens with good and bad claims, and the
// classic forgeries (alg none, HS256 keyed with the public key, a signature from
// another key, a payload swapped under a good signature).
func fuzzTokens(tb testing.TB, ec *ecdsa.PrivateKey, ed ed25519.PrivateKey) []string {
	good := map[string]any{"iss": issuer, "aud": "api", "sub": "alice", "exp": fuzzNow.Add(time.Hour).Unix(), "groups": []string{"a", "b"}}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	es := sign(tb, jose.ES256, ec, "ec1", good)
	parts := strings.Split(es, ".")
	other, _ := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{0x43}, 32))
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &ec.PublicKey})
	return []string{
		es,
		sign(tb, jose.EdDSA, ed, "ed1", good),
		sign(tb, jose.EdDSA, ed, "", with("aud", []string{"x", "api"})),
		sign(tb, jose.ES256, ec, "ec1", with("exp", fuzzNow.Add(-time.Hour).Unix())),
		sign(tb, jose.ES256, ec, "ec1", with("nbf", fuzzNow.Add(time.Hour).Unix())),
		sign(tb, jose.ES256, ec, "ec1", with("iss", "https://evil.test")),
		sign(tb, jose.ES256, ec, "ec1", with("exp", "soon")),
		sign(tb, jose.ES256, other, "ec1", good),
		sign(tb, jose.HS256, pub, "ec1", good),
		noneToken(good),
		parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","aud":"api","sub":"root"}`)) + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		"Bearer " + es,
		"a.b.c", "", "..", "e30.e30.",
	}
}

// FuzzAuthenticate runs any token, from the Authorization header and the query
// string, through a jwt_authn filter with fixed keys. No input may panic; a refused
// token has a reason; and a token the filter verifies must pass an independent check
// written with the standard library alone: an ES256 or EdDSA signature by one of
// the keys over the token's first two parts, the issuer, an accepted audience and
// exp/nbf within the skew. A forgery that go-jose or the filter let through fails
// here.
func FuzzAuthenticate(f *testing.F) {
	ec, ed := fuzzKeys(f)
	for _, tok := range fuzzTokens(f, ec, ed) {
		f.Add(tok, "")
		f.Add("", tok)
	}
	filter, err := fuzzFilter(f, fuzzJWKS(f, ec, ed))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, param string) {
		r, err := http.NewRequest("GET", "http://api/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.URL.RawQuery = "token=" + param
		if header != "" {
			r.Header["Authorization"] = []string{"Bearer " + header}
		}
		r.Header.Set("X-Jwt-Sub", "spoofed")
		res := filter.Authenticate(r, "/x", fuzzNow)
		switch res.Outcome {
		case Verified:
		case Invalid, Missing:
			if res.Err == nil {
				t.Fatalf("outcome %d without a reason", res.Outcome)
			}
			if _, ok := r.Header["X-Jwt-Sub"]; ok {
				t.Fatalf("a refused request keeps a client's x-jwt-sub")
			}
			return
		default:
			t.Fatalf("outcome %d for a rule that requires a token", res.Outcome)
		}
		tok := strings.TrimSpace(header)
		if tok == "" {
			tok = r.URL.Query().Get("token")
			if tok == "" {
				tok = param // the filter may have removed the parameter
			}
		}
		if why := independentlyValid(tok, ec, ed); why != "" {
			t.Fatalf("token %q verified, but %s", tok, why)
		}
		if got := r.Header.Get("X-Jwt-Sub"); got == "spoofed" {
			t.Fatalf("the client's x-jwt-sub survived verification")
		}
	})
}

// independentlyValid checks a verified token with the standard library; it returns
// why the token is not valid, or "".
func independentlyValid(tok string, ec *ecdsa.PrivateKey, ed ed25519.PrivateKey) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "it is not three parts"
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodePart(parts[0], &hdr); err != nil {
		return "its header does not decode: " + err.Error()
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "its signature is not base64url: " + err.Error()
	}
	input := []byte(parts[0] + "." + parts[1])
	switch hdr.Alg {
	case "ES256":
		sum := sha256.Sum256(input)
		if len(sig) != 64 || !ecdsa.Verify(&ec.PublicKey, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return "its ES256 signature is not the key's"
		}
	case "EdDSA":
		if !ed25519.Verify(ed.Public().(ed25519.PublicKey), input, sig) {
			return "its EdDSA signature is not the key's"
		}
	default:
		return "its algorithm is " + hdr.Alg
	}
	var claims struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Exp *float64        `json:"exp"`
		Nbf *float64        `json:"nbf"`
	}
	if err := decodePart(parts[1], &claims); err != nil {
		return "its payload does not decode: " + err.Error()
	}
	if claims.Iss != issuer {
		return "its issuer is " + claims.Iss
	}
	var auds []string
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(claims.Aud, &auds) != nil {
		return "its audience is " + string(claims.Aud)
	}
	found := false
	for _, a := range auds {
		found = found || a == "api"
	}
	if !found {
		return "its audience is " + string(claims.Aud)
	}
	if claims.Exp != nil && float64(fuzzNow.Add(-Skew).Unix()) > *claims.Exp {
		return "it expired"
	}
	if claims.Nbf != nil && float64(fuzzNow.Add(Skew).Unix()) < *claims.Nbf {
		return "it is not valid yet"
	}
	return ""
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// FuzzJWKS compiles any key set and runs a token through it: no panic, and a key set
// that is not one is refused with a reason.
func FuzzJWKS(f *testing.F) {
	ec, ed := fuzzKeys(f)
	toks := fuzzTokens(f, ec, ed)
	for i, jwks := range []string{
		fuzzJWKS(f, ec, ed),
		`{"keys":[]}`, `{"keys":null}`, `{}`, `[]`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":""}]}`, `{"keys":[{"kty":"EC","crv":"P-521"}]}`,
	} {
		f.Add(jwks, toks[i%len(toks)])
	}
	f.Fuzz(func(t *testing.T, jwks, tok string) {
		filter, err := fuzzFilter(t, jwks)
		if err != nil {
			if !strings.Contains(err.Error(), `provider "p"`) {
				t.Fatalf("error does not name the provider: %v", err)
			}
			return
		}
		r, err := http.NewRequest("GET", "http://api/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		res := filter.Authenticate(r, "/x", fuzzNow)
		if res.Outcome != Verified && res.Err == nil {
			t.Fatalf("outcome %d without a reason", res.Outcome)
		}
	})
}

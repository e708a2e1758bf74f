package jwt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
)

const issuer = "https://issuer.test"

type key struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newKey(t *testing.T, kid string) key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key{k, kid}
}

func (k key) jwks(t *testing.T) string {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.priv.PublicKey, KeyID: k.kid, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign signs claims (any JSON object) with alg.
func sign(t testing.TB, alg jose.SignatureAlgorithm, signingKey any, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthenticate(t *testing.T) {
	k, other := newKey(t, "k1"), newKey(t, "k1")
	now := time.Unix(1_800_000_000, 0)
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": issuer, "sub": "alice", "aud": []string{"api"}, "exp": now.Add(time.Hour).Unix(),
			"groups": []string{"dev", "ops"}, "level": 3}
		if mod != nil {
			mod(c)
		}
		return c
	}
	good := sign(t, jose.ES256, k.priv, "k1", claims(nil))
	f, err := New(Config{
		Providers: []Provider{{
			Name: "p", Issuer: issuer, Audiences: []string{"api"}, JWKS: k.jwks(t),
			FromHeaders:          []HeaderLocation{{Name: "Authorization", Prefix: "Bearer "}, {Name: "x-token"}},
			FromParams:           []string{"access_token"},
			ForwardPayloadHeader: "x-jwt-payload",
			ClaimToHeaders:       []ClaimHeader{{Header: "x-sub", Claim: "sub"}, {Header: "x-groups", Claim: "groups"}, {Header: "x-level", Claim: "level"}},
			PayloadInMetadata:    "payload",
		}},
		Rules: []Rule{{Prefix: "/", Requirement: Requirement{Providers: []string{"p"}, AllowMissing: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tests := []struct {
		name    string
		target  string
		header  http.Header
		want    Outcome
		headers http.Header // the request's headers afterwards (only checked if set)
	}{
		{"valid", "/", bearer(good), Verified, http.Header{
			"X-Jwt-Payload": {strings.Split(good, ".")[1]}, "X-Sub": {"alice"}, "X-Groups": {"dev,ops"}, "X-Level": {"3"}}},
		{"valid, lower-case prefix", "/", http.Header{"Authorization": {"bearer " + good}}, Verified, nil},
		{"valid in another header", "/", http.Header{"X-Token": {good}}, Verified, nil},
		{"valid in a parameter", "/?access_token=" + good, nil, Verified, nil},
		{"missing", "/", nil, Pass, http.Header{}},
		{"spoofed claim headers removed", "/", http.Header{"X-Sub": {"root"}, "X-Jwt-Payload": {"e30"}}, Pass, http.Header{}},
		{"another scheme is no token", "/", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, Pass, nil},
		{"expired", "/", bearer(sign(t, jose.ES256, k.priv, "k1", claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }))), Invalid, nil},
		{"expired within skew", "/", bearer(sign(t, jose.ES256, k.priv, "k1", claims(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }))), Verified, nil},
		{"not yet valid", "/", bearer(sign(t, jose.ES256, k.priv, "k1", claims(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() }))), Invalid, nil},
		{"wrong signature", "/", bearer(sign(t, jose.ES256, other.priv, "k1", claims(nil))), Invalid, nil},
		{"unknown kid", "/", bearer(sign(t, jose.ES256, k.priv, "k9", claims(nil))), Invalid, nil},
		{"wrong issuer", "/", bearer(sign(t, jose.ES256, k.priv, "k1", claims(func(c map[string]any) { c["iss"] = "https://evil" }))), Invalid, nil},
		{"wrong audience", "/", bearer(sign(t, jose.ES256, k.priv, "k1", claims(func(c map[string]any) { c["aud"] = "web" }))), Invalid, nil},
		{"string audience", "/", bearer(sign(t, jose.ES256, k.priv, "k1", claims(func(c map[string]any) { c["aud"] = "api" }))), Verified, nil},
		{"HMAC", "/", bearer(sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "k1", claims(nil))), Invalid, nil},
		{"alg none", "/", bearer(noneToken(claims(nil))), Invalid, nil},
		{"garbage", "/", bearer("a.b.c"), Invalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			res := f.Authenticate(r, "/", now)
			if res.Outcome != tt.want {
				t.Fatalf("outcome %v (%v), want %v", res.Outcome, res.Err, tt.want)
			}
			if tt.want == Verified {
				payload, _ := res.Metadata["payload"].(map[string]any)
				if payload["sub"] != "alice" {
					t.Errorf("metadata %v", res.Metadata)
				}
				if _, ok := r.Header["Authorization"]; ok {
					t.Errorf("the token was forwarded")
				}
			}
			if tt.headers != nil {
				if diff := cmp.Diff(tt.headers, r.Header); diff != "" {
					t.Errorf("headers (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// noneToken is an unsigned token (alg none).
func noneToken(claims map[string]any) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString(payload) + "."
}

func TestRequiredToken(t *testing.T) {
	k := newKey(t, "k1")
	f, err := New(Config{
		Providers: []Provider{{Name: "p", Issuer: issuer, JWKS: k.jwks(t), FromHeaders: []HeaderLocation{{Name: "Authorization", Prefix: "Bearer "}}}},
		Rules:     []Rule{{Prefix: "/api/", Requirement: Requirement{Providers: []string{"p"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]Outcome{"/api/x": Missing, "/public": Pass} {
		if got := f.Authenticate(httptest.NewRequest(http.MethodGet, path, nil), path, time.Now()).Outcome; got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

func TestBadJWKS(t *testing.T) {
	if _, err := New(Config{Providers: []Provider{{Name: "p", JWKS: "not json"}}}); err == nil {
		t.Error("a JWKS that is not JSON was accepted")
	}
	// A set with only a symmetric key is valid but verifies nothing.
	f, err := New(Config{Providers: []Provider{{Name: "p", JWKS: `{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY","kid":"k1"}]}`}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.providers["p"].keys); n != 0 {
		t.Errorf("%d keys kept, want none", n)
	}
}

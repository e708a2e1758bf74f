package jwt

import (
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// A signed token respelled with stray bits in the last character of a part decodes to
// the same bytes, and go-jose verifies it (it re-encodes the parts before checking the
// signature); the filter refuses it, so one signed token has one spelling.
func TestNonCanonicalPartRefused(t *testing.T) {
	ec, ed := fuzzKeys(t)
	f, err := fuzzFilter(t, fuzzJWKS(t, ec, ed))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": issuer, "aud": "api", "sub": "alice", "exp": fuzzNow.Add(time.Hour).Unix()}
	// Pad the subject until the payload's encoding leaves stray bits in its last
	// character (a length of 2 or 3 modulo 4).
	var tok string
	for pad := ""; ; pad += "x" {
		claims["sub"] = "alice" + pad
		tok = sign(t, jose.EdDSA, ed, "ed1", claims)
		if n := len(strings.Split(tok, ".")[1]) % 4; n == 2 || n == 3 {
			break
		}
	}
	authenticate := func(tok string) Result {
		r, err := http.NewRequest("GET", "http://api/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		return f.Authenticate(r, "/x", fuzzNow)
	}
	if res := authenticate(tok); res.Outcome != Verified {
		t.Fatalf("the token as signed: outcome %d (%v), want verified", res.Outcome, res.Err)
	}
	parts := strings.Split(tok, ".")
	last := parts[1][len(parts[1])-1]
	respelled := base64URLAlphabet[base64URLValue(last)|1] // a stray low bit
	parts[1] = parts[1][:len(parts[1])-1] + string(respelled)
	res := authenticate(strings.Join(parts, "."))
	if res.Outcome != Invalid || res.Err == nil || !strings.Contains(res.Err.Error(), "canonical") {
		t.Fatalf("the respelled token: outcome %d (%v), want invalid, not canonical", res.Outcome, res.Err)
	}
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

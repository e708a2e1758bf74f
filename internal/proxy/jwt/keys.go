package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithms are the signature algorithms accepted. "none" and the HMAC family
// are refused: a symmetric key in a JWKS would let anyone who can read the
// configuration mint tokens.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384,
	jose.EdDSA,
}

// parseJWKS reads a JSON Web Key Set and keeps its public signature keys (RSA,
// EC, Ed25519). Keys it cannot use (symmetric, for encryption, of an unknown
// type) are skipped; a document that is not a key set is an error.
func parseJWKS(doc string) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New("not a JSON Web Key Set: no \"keys\"")
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			k = k.Public()
		default:
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

package control

import (
	"time"

	"trellis.dev/trellis/internal/jwks"
	"trellis.dev/trellis/internal/model"
)

// AuthzConfig configures authorization and request authentication
// (docs/authorization.md).
type AuthzConfig struct {
	// ExtAuthz are the external authorizers CUSTOM policies may name
	// (--ext-authz NAME=HOST:PORT[,timeout=DURATION][,failOpen]).
	ExtAuthz []model.ExtAuthzProvider
	// PathNormalization is the sidecars' path normalization; default
	// DECODE_AND_MERGE_SLASHES.
	PathNormalization model.PathNormalization
	// JWKSTimeout bounds one fetch of a jwksUri. Default jwks.DefaultTimeout.
	JWKSTimeout time.Duration
	// JWKSRefresh is how often key sets are fetched again. Default
	// jwks.DefaultRefresh.
	JWKSRefresh time.Duration
	// JWKSAllowPrivate allows jwksUri on loopback, link-local and private addresses.
	JWKSAllowPrivate bool
}

// jwksSource is what the translator needs of the key set fetcher.
type jwksSource interface {
	// Want sets the URIs to fetch.
	Want(uris []string)
	// Lookup returns a fetched key set.
	Lookup(uri string) (string, bool)
	// Changed signals that a key set appeared or changed.
	Changed() <-chan struct{}
}

var _ jwksSource = (*jwks.Fetcher)(nil)

// buildOptions are the model options of the authorization settings.
func (c AuthzConfig) buildOptions() []model.Option {
	return []model.Option{model.WithExtAuthz(c.ExtAuthz...), model.WithPathNormalization(c.PathNormalization)}
}

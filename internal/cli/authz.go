package cli

import (
	"fmt"

	"github.com/spf13/pflag"

	"trellis.dev/trellis/internal/control"
	"trellis.dev/trellis/internal/jwks"
	"trellis.dev/trellis/internal/model"
)

// authzFlags are the authorization flags of `trellis control` (and, passed through,
// of `trellis up`).
type authzFlags struct {
	extAuthz          []string
	pathNormalization string
	jwksAllowPrivate  bool
	cfg               control.AuthzConfig
}

func addAuthzFlags(f *pflag.FlagSet) *authzFlags {
	a := &authzFlags{}
	f.StringArrayVar(&a.extAuthz, "ext-authz", nil,
		"external authorizer for CUSTOM AuthorizationPolicies: NAME=HOST:PORT[,timeout=DURATION][,failOpen] (Envoy ext_authz gRPC, h2c); repeat for more")
	f.StringVar(&a.pathNormalization, "path-normalization", string(model.DefaultPathNormalization),
		"how sidecars normalize request paths before any decision: DECODE_AND_MERGE_SLASHES, REJECT_ESCAPED_SLASHES, MERGE_SLASHES or BASE")
	f.DurationVar(&a.cfg.JWKSTimeout, "jwks-timeout", jwks.DefaultTimeout, "timeout of one fetch of a RequestAuthentication jwksUri")
	f.DurationVar(&a.cfg.JWKSRefresh, "jwks-refresh", jwks.DefaultRefresh, "how often jwksUri key sets are fetched again")
	f.BoolVar(&a.jwksAllowPrivate, "jwks-allow-private", false, "allow jwksUri on loopback, link-local and private addresses")
	return a
}

// config checks the flags and returns the control plane's authorization settings.
func (a *authzFlags) config() (control.AuthzConfig, error) {
	cfg := a.cfg
	cfg.JWKSAllowPrivate = a.jwksAllowPrivate
	for _, s := range a.extAuthz {
		p, err := model.ParseExtAuthz(s)
		if err != nil {
			return cfg, fmt.Errorf("--ext-authz: %w", err)
		}
		cfg.ExtAuthz = append(cfg.ExtAuthz, p)
	}
	pn, err := model.ParsePathNormalization(a.pathNormalization)
	if err != nil {
		return cfg, fmt.Errorf("--path-normalization: %w", err)
	}
	cfg.PathNormalization = pn
	return cfg, nil
}

// args are the flags as `trellis up` passes them on to `trellis control`.
func (a *authzFlags) args() []string {
	var out []string
	for _, s := range a.extAuthz {
		out = append(out, "--ext-authz", s)
	}
	if a.pathNormalization != string(model.DefaultPathNormalization) {
		out = append(out, "--path-normalization", a.pathNormalization)
	}
	if a.cfg.JWKSTimeout != jwks.DefaultTimeout {
		out = append(out, "--jwks-timeout", a.cfg.JWKSTimeout.String())
	}
	if a.cfg.JWKSRefresh != jwks.DefaultRefresh {
		out = append(out, "--jwks-refresh", a.cfg.JWKSRefresh.String())
	}
	if a.jwksAllowPrivate {
		out = append(out, "--jwks-allow-private")
	}
	return out
}

package model

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/registry"
)

// ExtAuthzProvider is an external authorizer that CUSTOM policies name: a server of
// Envoy's ext_authz gRPC API (envoy.service.auth.v3.Authorization).
type ExtAuthzProvider struct {
	// Name is what AuthorizationPolicy spec.provider.name refers to.
	Name string `json:"name"`
	// Address is host:port of the gRPC server (plaintext, h2c).
	Address string `json:"address"`
	// Timeout bounds each check; DefaultExtAuthzTimeout if zero.
	Timeout time.Duration `json:"timeout,omitempty"`
	// FailOpen lets requests through when the authorizer cannot be asked; by
	// default they are denied.
	FailOpen bool `json:"failOpen,omitempty"`
}

// DefaultExtAuthzTimeout bounds an external authorization check.
const DefaultExtAuthzTimeout = 600 * time.Millisecond

// ParseExtAuthz parses the control plane's --ext-authz flag:
// NAME=HOST:PORT[,timeout=DURATION][,failOpen].
func ParseExtAuthz(s string) (ExtAuthzProvider, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return ExtAuthzProvider{}, fmt.Errorf("external authorizer %q: want NAME=HOST:PORT[,timeout=DURATION][,failOpen]", s)
	}
	parts := strings.Split(rest, ",")
	p := ExtAuthzProvider{Name: name, Address: parts[0]}
	host, port, err := net.SplitHostPort(p.Address)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 || host == "" {
		return ExtAuthzProvider{}, fmt.Errorf("external authorizer %s: address %q is not HOST:PORT", name, p.Address)
	}
	for _, opt := range parts[1:] {
		switch k, v, _ := strings.Cut(opt, "="); k {
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return ExtAuthzProvider{}, fmt.Errorf("external authorizer %s: timeout %q is not a positive duration", name, v)
			}
			p.Timeout = d
		case "failOpen":
			p.FailOpen = v == "" || v == "true"
		default:
			return ExtAuthzProvider{}, fmt.Errorf("external authorizer %s: unknown option %q (timeout=DURATION, failOpen)", name, opt)
		}
	}
	return p, nil
}

// WithExtAuthz sets the external authorizers that CUSTOM policies may name.
func WithExtAuthz(providers ...ExtAuthzProvider) Option {
	return func(o *options) { o.extAuthz = append(o.extAuthz, providers...) }
}

// WithJWKS gives the key sets of jwksUri: lookup returns the document fetched from a
// URI, false when there is none (yet). Build never fetches anything itself.
func WithJWKS(lookup func(uri string) (string, bool)) Option {
	return func(o *options) { o.jwks = lookup }
}

// PathNormalization is how sidecars normalize request paths before any decision
// (docs/xds.md, "Path normalization"), named as Istio names its modes.
type PathNormalization string

// The modes. Every mode normalizes (percent-decoding of unreserved characters,
// backslashes, path parameters, dot segments); they differ in merging slashes and
// in what they do with escaped slashes (%2F, %5C).
const (
	PathNormalizationBase           PathNormalization = "BASE"
	PathNormalizationMergeSlashes   PathNormalization = "MERGE_SLASHES"
	PathNormalizationDecodeAndMerge PathNormalization = "DECODE_AND_MERGE_SLASHES"
	PathNormalizationRejectEscaped  PathNormalization = "REJECT_ESCAPED_SLASHES"
	DefaultPathNormalization                          = PathNormalizationDecodeAndMerge
)

// ParsePathNormalization checks a mode name (case-insensitive).
func ParsePathNormalization(s string) (PathNormalization, error) {
	p := PathNormalization(strings.ToUpper(s))
	switch p {
	case PathNormalizationBase, PathNormalizationMergeSlashes, PathNormalizationDecodeAndMerge, PathNormalizationRejectEscaped:
		return p, nil
	}
	return "", fmt.Errorf("path normalization %q: want BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES or REJECT_ESCAPED_SLASHES", s)
}

// WithPathNormalization sets the sidecars' path normalization; default
// DECODE_AND_MERGE_SLASHES.
func WithPathNormalization(p PathNormalization) Option {
	return func(o *options) {
		if p != "" {
			o.pathNormalization = p
		}
	}
}

// ExtAuthzProvider returns the configured authorizer of that name, if any.
func (m *Mesh) ExtAuthzProvider(name string) (ExtAuthzProvider, bool) {
	i := slices.IndexFunc(m.ExtAuthz, func(p ExtAuthzProvider) bool { return p.Name == name })
	if i < 0 {
		return ExtAuthzProvider{}, false
	}
	return m.ExtAuthz[i], true
}

// addSecurityPolicies translates AuthorizationPolicies and RequestAuthentications,
// then looks for policies that are valid but cannot do what they seem to.
func (b *builder) addSecurityPolicies(cfg *config.Set, instances []registry.Instance) {
	b.mesh.ExtAuthz = slices.Clone(b.opts.extAuthz)
	slices.SortFunc(b.mesh.ExtAuthz, func(a, c ExtAuthzProvider) int { return cmp.Compare(a.Name, c.Name) })
	if b.opts.pathNormalization != DefaultPathNormalization {
		b.mesh.PathNormalization = b.opts.pathNormalization
	}
	b.addAuthorizationPolicies(cfg.AuthorizationPolicies)
	b.addRequestAuthentications(cfg.RequestAuthentications)
	b.checkSecurityPolicies(cfg, instances)
	sortErrors(b.mesh.Warnings)
}

package tokenauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"trellis.dev/trellis/internal/identity"
)

// Defaults of Config.
const (
	DefaultAudience  = "trellis-ca"
	DefaultCacheTTL  = 30 * time.Second
	DefaultRefuseTTL = 5 * time.Second
	DefaultTimeout   = 10 * time.Second
	// maxEntries bounds the cache; when full, expired entries go, then everything.
	maxEntries = 4096
)

// serviceAccountPrefix starts the user name of a service account's token.
const serviceAccountPrefix = "system:serviceaccount:"

// ErrUnauthenticated is wrapped by every refusal of a token.
var ErrUnauthenticated = errors.New("service-account token not accepted")

// Config configures an Authenticator.
type Config struct {
	// Client creates the TokenReviews; required.
	Client kubernetes.Interface
	// Audience the token must be issued for; default trellis-ca.
	Audience string
	// TrustDomain of the identities; default cluster.local.
	TrustDomain string
	// CacheTTL is how long an accepted token is remembered; default 30s.
	CacheTTL time.Duration
	// RefuseTTL is how long a refused token is remembered; default 5s.
	RefuseTTL time.Duration
	// Timeout bounds a TokenReview; default 10s.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Authenticator is a casvc.Authenticator backed by TokenReview.
type Authenticator struct {
	cfg Config

	mu    sync.Mutex
	cache map[[sha256.Size]byte]entry
}

type entry struct {
	id      identity.ID
	err     error
	expires time.Time
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Client == nil {
		return nil, errors.New("token authenticator: Client is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = identity.DefaultTrustDomain
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.RefuseTTL <= 0 {
		cfg.RefuseTTL = DefaultRefuseTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Authenticator{cfg: cfg, cache: map[[sha256.Size]byte]entry{}}, nil
}

// Authenticate returns the identity of the service account whose token the caller
// sent as "authorization: Bearer <token>" in its gRPC metadata.
func (a *Authenticator) Authenticate(ctx context.Context) (identity.ID, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get(identity.MetadataAuthorization)
	if len(auth) != 1 {
		return identity.ID{}, fmt.Errorf("%w: want one authorization metadata value, got %d", ErrUnauthenticated, len(auth))
	}
	scheme, token, ok := strings.Cut(auth[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return identity.ID{}, fmt.Errorf(`%w: authorization is not "Bearer <token>"`, ErrUnauthenticated)
	}
	return a.AuthenticateToken(ctx, token)
}

// AuthenticateToken reviews one token, or answers from the cache.
func (a *Authenticator) AuthenticateToken(ctx context.Context, token string) (identity.ID, error) {
	key := sha256.Sum256([]byte(token))
	now := a.cfg.Now()
	a.mu.Lock()
	e, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.id, e.err
	}
	id, transient, err := a.review(ctx, token)
	if transient {
		return identity.ID{}, err // not the token's fault: do not remember it
	}
	ttl := a.cfg.CacheTTL
	if err != nil {
		ttl = a.cfg.RefuseTTL
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxEntries {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxEntries {
			clear(a.cache)
		}
	}
	a.cache[key] = entry{id: id, err: err, expires: now.Add(ttl)}
	return id, err
}

// review asks the API server. transient reports an error of the review itself (the
// API server unreachable), as opposed to a refused token.
func (a *Authenticator) review(ctx context.Context, token string) (id identity.ID, transient bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{a.cfg.Audience}}}
	res, err := a.cfg.Client.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		return identity.ID{}, true, fmt.Errorf("reviewing service-account token: %w", err)
	}
	st := res.Status
	switch {
	case st.Error != "":
		return identity.ID{}, false, fmt.Errorf("%w: %s", ErrUnauthenticated, st.Error)
	case !st.Authenticated:
		return identity.ID{}, false, fmt.Errorf("%w: not authenticated", ErrUnauthenticated)
	case !slices.Contains(st.Audiences, a.cfg.Audience):
		return identity.ID{}, false, fmt.Errorf("%w: not issued for the audience %q", ErrUnauthenticated, a.cfg.Audience)
	}
	id, err = a.identityOf(st.User.Username)
	return id, false, err
}

// identityOf maps system:serviceaccount:<ns>:<sa> to the SPIFFE ID.
func (a *Authenticator) identityOf(user string) (identity.ID, error) {
	rest, ok := strings.CutPrefix(user, serviceAccountPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return identity.ID{}, fmt.Errorf("%w: user %q is not a service account", ErrUnauthenticated, user)
	}
	id := identity.ID{TrustDomain: a.cfg.TrustDomain, Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		return identity.ID{}, fmt.Errorf("%w: user %q: %w", ErrUnauthenticated, user, err)
	}
	return id, nil
}

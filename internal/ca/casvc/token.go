package casvc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/metadata"

	"trellis.dev/trellis/internal/identity"
)

// JoinTokenFile is the join token's file name in the control plane's data directory.
const JoinTokenFile = "join-token"

// JoinToken reads the join token from dataDir, creating it (32 random bytes in hex, file
// mode 0600) if there is none.
func JoinToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, JoinTokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		token := strings.TrimSpace(string(data))
		if len(token) < 32 {
			return "", fmt.Errorf("reading join token %s: shorter than 32 characters", path)
		}
		return token, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("reading join token: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating join token: %w", err)
	}
	token := hex.EncodeToString(b)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("writing join token: %w", err)
	}
	// O_EXCL: if another replica wrote one meanwhile, use that one.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return JoinToken(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("writing join token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("writing join token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing join token: %w", err)
	}
	return token, nil
}

// TokenAuthenticator authenticates local mode's callers by the join token, and takes
// the identity they claim in metadata at their word: holding the token means being a
// member of the mesh, entitled to any identity in it.
type TokenAuthenticator struct {
	sum         [sha256.Size]byte
	trustDomain string
}

var _ Authenticator = (*TokenAuthenticator)(nil)

// NewTokenAuthenticator accepts callers that send token, and gives them identities in
// trustDomain (identity.DefaultTrustDomain if empty).
func NewTokenAuthenticator(token, trustDomain string) *TokenAuthenticator {
	if trustDomain == "" {
		trustDomain = identity.DefaultTrustDomain
	}
	return &TokenAuthenticator{sum: sha256.Sum256([]byte(token)), trustDomain: trustDomain}
}

// Authenticate checks the bearer token (in constant time, whatever its length) and
// returns the identity claimed in the metadata.
func (a *TokenAuthenticator) Authenticate(ctx context.Context) (identity.ID, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth, err := single(md, identity.MetadataAuthorization)
	if err != nil {
		return identity.ID{}, err
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return identity.ID{}, errors.New(`authorization is not "Bearer <token>"`)
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], a.sum[:]) != 1 {
		return identity.ID{}, errors.New("join token does not match")
	}
	ns, err := single(md, identity.MetadataNamespace)
	if err != nil {
		return identity.ID{}, err
	}
	sa, err := single(md, identity.MetadataServiceAccount)
	if err != nil {
		return identity.ID{}, err
	}
	id := identity.ID{TrustDomain: a.trustDomain, Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		return identity.ID{}, fmt.Errorf("claimed identity: %w", err)
	}
	return id, nil
}

// single is the one value of a metadata key.
func single(md metadata.MD, key string) (string, error) {
	v := md.Get(key)
	switch len(v) {
	case 0:
		return "", fmt.Errorf("metadata %q missing", key)
	case 1:
		return v[0], nil
	default:
		return "", fmt.Errorf("metadata %q given %d times", key, len(v))
	}
}

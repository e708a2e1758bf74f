package casecret

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"trellis.dev/trellis/internal/ca"
)

// Defaults of Config.
const (
	DefaultName    = "trellis-ca"
	DefaultTimeout = 10 * time.Second
)

// Keys of the Secret's data.
const (
	CertKey   = "root-cert.pem"
	KeyKey    = "root-key.pem"
	BundleKey = "roots.pem"
)

// Errors Save wraps.
var (
	// ErrNotCreated: there is no Secret yet and this replica may not create it; wait
	// for the leader to.
	ErrNotCreated = errors.New("the CA Secret does not exist yet and only the leader creates it")
	// ErrConflict: another replica created or changed the Secret since it was loaded;
	// load it again.
	ErrConflict = errors.New("the CA Secret was changed by someone else")
)

// Config configures a Storage.
type Config struct {
	// Client reaches the API server; required.
	Client kubernetes.Interface
	// Namespace is the control plane's namespace; required.
	Namespace string
	// Name is the Secret's name; default trellis-ca.
	Name string
	// MayCreate says whether this replica may create the Secret when there is none
	// (the leader may); nil: always.
	MayCreate func() bool
	// Labels are put on a Secret that Save creates.
	Labels map[string]string
	// Timeout bounds each API call; default 10s.
	Timeout time.Duration
}

// Storage is a ca.Storage on a Secret.
type Storage struct {
	cfg Config

	mu sync.Mutex
	rv string // resourceVersion last loaded or saved; empty: none seen
}

var _ ca.Storage = (*Storage)(nil)

// New returns a Storage.
func New(cfg Config) (*Storage, error) {
	if cfg.Client == nil || cfg.Namespace == "" {
		return nil, errors.New("CA Secret storage: Client and Namespace are required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Storage{cfg: cfg}, nil
}

// String names the Secret: namespace/name.
func (s *Storage) String() string { return s.cfg.Namespace + "/" + s.cfg.Name }

// callContext bounds one API call. ca.Storage has no context: a CA operation is short
// and not cancelled.
func (s *Storage) callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.Timeout)
}

// Load reads the Secret; found is false when it does not exist.
func (s *Storage) Load() (ca.StoredRoot, bool, error) {
	ctx, cancel := s.callContext()
	defer cancel()
	sec, err := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace).Get(ctx, s.cfg.Name, metav1.GetOptions{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if apierrors.IsNotFound(err) {
		s.rv = ""
		return ca.StoredRoot{}, false, nil
	}
	if err != nil {
		return ca.StoredRoot{}, false, fmt.Errorf("reading Secret %s: %w", s, err)
	}
	s.rv = sec.ResourceVersion
	root := ca.StoredRoot{Cert: sec.Data[CertKey], Key: sec.Data[KeyKey], Bundle: sec.Data[BundleKey]}
	if len(root.Cert) == 0 || len(root.Key) == 0 {
		return ca.StoredRoot{}, false, fmt.Errorf("Secret %s lacks %s or %s", s, CertKey, KeyKey)
	}
	return root, true, nil
}

// Save creates the Secret if none was loaded (and MayCreate allows), else updates the
// one loaded, failing with ErrConflict if it changed since.
func (s *Storage) Save(root ca.StoredRoot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := s.callContext()
	defer cancel()
	data := map[string][]byte{CertKey: root.Cert, KeyKey: root.Key, BundleKey: root.Bundle}
	client := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace)
	if s.rv == "" {
		if s.cfg.MayCreate != nil && !s.cfg.MayCreate() {
			return fmt.Errorf("creating Secret %s: %w", s, ErrNotCreated)
		}
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.cfg.Name, Namespace: s.cfg.Namespace, Labels: s.cfg.Labels},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		created, err := client.Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Secret %s: %w", s, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("creating Secret %s: %w", s, err)
		}
		s.rv = created.ResourceVersion
		return nil
	}
	sec, err := client.Get(ctx, s.cfg.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("updating Secret %s: %w", s, err)
	}
	if sec.ResourceVersion != s.rv {
		return fmt.Errorf("updating Secret %s: %w", s, ErrConflict)
	}
	sec.Data = data
	updated, err := client.Update(ctx, sec, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("updating Secret %s: %w", s, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("updating Secret %s: %w", s, err)
	}
	s.rv = updated.ResourceVersion
	return nil
}

// Watch polls the Secret every interval until ctx ends, and calls changed when its
// resourceVersion differs from the one this Storage last loaded or saved: another
// replica rotated the root. changed typically calls ca.CA.Reload, which loads it.
func (s *Storage) Watch(ctx context.Context, interval time.Duration, changed func(), log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		sec, err := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace).Get(cctx, s.cfg.Name, metav1.GetOptions{})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("checking the CA Secret", "secret", s.String(), "err", err)
			}
			continue
		}
		s.mu.Lock()
		differs := sec.ResourceVersion != s.rv
		s.mu.Unlock()
		if differs {
			changed()
		}
	}
}

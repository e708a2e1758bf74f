package cabundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultInterval is how often Keeper checks the configurations by default.
const DefaultInterval = 30 * time.Second

// Config configures a Keeper.
type Config struct {
	// Client reaches the API server; required.
	Client kubernetes.Interface
	// Mutating and Validating name the webhook configurations to keep; empty: none.
	Mutating, Validating string
	// Bundle returns the current trust bundle (PEM); required.
	Bundle func() []byte
	// Interval between checks; default 30s.
	Interval time.Duration
	// RootCert, if set, is the ConfigMap that also gets the bundle in every selected
	// namespace (rootcert.go).
	RootCert *RootCert
	// Logger receives one line per update and per failed check; default slog.Default().
	Logger *slog.Logger
}

// Keeper keeps the caBundles current.
type Keeper struct {
	cfg  Config
	kick chan struct{}
}

// New returns a Keeper; call Run.
func New(cfg Config) (*Keeper, error) {
	if cfg.Client == nil || cfg.Bundle == nil {
		return nil, errors.New("caBundle keeper: Client and Bundle are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Keeper{cfg: cfg, kick: make(chan struct{}, 1)}, nil
}

// Trigger asks for a check now (the trust bundle changed).
func (k *Keeper) Trigger() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Run checks at once, then every Interval and on Trigger (and, with RootCert, when a
// selected namespace appears or changes), until ctx ends.
func (k *Keeper) Run(ctx context.Context) {
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		k.watchNamespaces(ctx)
	}()
	defer func() { <-watched }()
	tick := time.NewTicker(k.cfg.Interval)
	defer tick.Stop()
	for {
		if err := k.Sync(ctx); err != nil && ctx.Err() == nil {
			k.cfg.Logger.Warn("updating webhook caBundle", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-k.kick:
		}
	}
}

// Sync makes both configurations (and the RootCert ConfigMaps) carry the current
// bundle, once.
func (k *Keeper) Sync(ctx context.Context) error {
	bundle := k.cfg.Bundle()
	if len(bundle) == 0 {
		return errors.New("the trust bundle is empty")
	}
	var errs []error
	if name := k.cfg.Mutating; name != "" {
		errs = append(errs, k.syncMutating(ctx, name, bundle))
	}
	if name := k.cfg.Validating; name != "" {
		errs = append(errs, k.syncValidating(ctx, name, bundle))
	}
	errs = append(errs, k.syncRootCerts(ctx, bundle))
	return errors.Join(errs...)
}

func (k *Keeper) syncMutating(ctx context.Context, name string, bundle []byte) error {
	client := k.cfg.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // not installed (yet)
	}
	if err != nil {
		return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
	}
	changed := false
	for i := range cfg.Webhooks {
		changed = setBundle(&cfg.Webhooks[i].ClientConfig, bundle) || changed
	}
	if !changed {
		return nil
	}
	if _, err := client.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating MutatingWebhookConfiguration %s: %w", name, err)
	}
	k.cfg.Logger.Info("updated webhook caBundle", "kind", "MutatingWebhookConfiguration", "name", name)
	return nil
}

func (k *Keeper) syncValidating(ctx context.Context, name string, bundle []byte) error {
	client := k.cfg.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cfg, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", name, err)
	}
	changed := false
	for i := range cfg.Webhooks {
		wh := &cfg.Webhooks[i]
		changed = setBundle(&wh.ClientConfig, bundle) || changed
		if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Fail {
			fail := admissionregistrationv1.Fail
			wh.FailurePolicy = &fail
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := client.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating ValidatingWebhookConfiguration %s: %w", name, err)
	}
	k.cfg.Logger.Info("updated webhook caBundle", "kind", "ValidatingWebhookConfiguration", "name", name)
	return nil
}

// setBundle sets cc's caBundle and reports whether it changed.
func setBundle(cc *admissionregistrationv1.WebhookClientConfig, bundle []byte) bool {
	if bytes.Equal(cc.CABundle, bundle) {
		return false
	}
	cc.CABundle = bytes.Clone(bundle)
	return true
}

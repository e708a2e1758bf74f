package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/kube/cabundle"
	"trellis.dev/trellis/internal/kube/casecret"
	"trellis.dev/trellis/internal/kube/inject"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/leader"
	"trellis.dev/trellis/internal/kube/routestatus"
	"trellis.dev/trellis/internal/kube/tokenauth"
	"trellis.dev/trellis/internal/kube/webhook"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/serverlimits"
	kubesource "trellis.dev/trellis/internal/source/kube"
	"trellis.dev/trellis/internal/store"
)

// DefaultWebhookAddr is where the admission webhooks are served in Kubernetes mode.
const DefaultWebhookAddr = ":15017"

// Kubernetes runs the control plane on Kubernetes (Config.Kubernetes): configuration
// and service discovery come from the API server, the CA root lives in a Secret, one
// replica leads, and every replica serves xDS and the admission webhooks.
type Kubernetes struct {
	// Config reaches the API server (a kubeconfig's, or the in-cluster one); required.
	Config *rest.Config
	// Namespace is the control plane's own namespace: its Service, Lease and CA
	// Secret. Default trellis-system.
	Namespace string
	// Identity names this replica in the Lease (its pod name); default the host name.
	Identity string
	// ServiceName is the control plane's Service; its DNS names go into the serving
	// certificate of the xDS and webhook listeners. Default "trellis".
	ServiceName string
	// LeaseName is the leader-election Lease; default "trellis".
	LeaseName string
	// CASecret holds the CA root; default trellis-ca.
	CASecret string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election; defaults
	// 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// WebhookAddr is where the admission webhooks (/inject, /validate) are served over
	// TLS. Default :15017.
	WebhookAddr string
	// WebhookListener, if set, is used instead of listening on WebhookAddr.
	WebhookListener net.Listener
	// Inject is what the injection webhook adds to pods.
	Inject inject.Config
	// MutatingWebhook and ValidatingWebhook name the webhook configurations whose
	// caBundle the leader keeps current; defaults install.InjectorName and
	// install.ValidatorName.
	MutatingWebhook, ValidatingWebhook string
	// CABundleInterval is how often the leader checks those caBundles; default 30s.
	CABundleInterval time.Duration
	// CASecretInterval is how often every replica checks the CA Secret for a
	// rotation made by another; default 30s.
	CASecretInterval time.Duration
	// TokenAudience is the audience of the service-account tokens that authenticate
	// certificate requests; default trellis-ca.
	TokenAudience string
	// Debounce is the Kubernetes source's quiet period; default 100ms.
	Debounce time.Duration
}

func (k *Kubernetes) setDefaults() {
	if k.Namespace == "" {
		k.Namespace = install.DefaultNamespace
	}
	if k.Identity == "" {
		k.Identity, _ = os.Hostname()
	}
	if k.ServiceName == "" {
		k.ServiceName = install.Name
	}
	if k.LeaseName == "" {
		k.LeaseName = install.Name
	}
	if k.CASecret == "" {
		k.CASecret = casecret.DefaultName
	}
	if k.WebhookAddr == "" {
		k.WebhookAddr = DefaultWebhookAddr
	}
	if k.MutatingWebhook == "" {
		k.MutatingWebhook = install.InjectorName
	}
	if k.ValidatingWebhook == "" {
		k.ValidatingWebhook = install.ValidatorName
	}
	if k.CASecretInterval <= 0 {
		k.CASecretInterval = 30 * time.Second
	}
}

// ServingNames are the DNS names of the control plane's Service: the serving
// certificate of the xDS and webhook listeners carries them.
func (k *Kubernetes) ServingNames() []string {
	svc, ns := k.ServiceName, k.Namespace
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// kubePlane is the Kubernetes half of the control plane: the source, leader
// election, the CA Secret, the token authenticator and the webhook server.
type kubePlane struct {
	cfg     *Kubernetes
	log     *slog.Logger
	client  kubernetes.Interface
	source  *kubesource.Source
	elector *leader.Elector
	storage *casecret.Storage
	auth    *tokenauth.Authenticator
	webhook net.Listener
	limits  serverlimits.Limits

	// caReady is closed once sec is set; the leader's duties wait for it.
	caReady chan struct{}
	sec     *security
	keeper  *cabundle.Keeper
	routes  *routestatus.Writer

	// Leader election runs from newKubePlane until stop, on its own context: it must
	// campaign before the CA exists, and stop whatever ends Run.
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startKube starts the Kubernetes half: it connects, campaigns for the lead, adds the
// Service's names to the serving certificate's, and loads the CA from its Secret
// (waiting for the leader to create it). The caller stops the returned kubePlane.
func startKube(ctx context.Context, cfg *Config, st *store.Store, log *slog.Logger) (*kubePlane, *securityParts, error) {
	kp, err := newKubePlane(ctx, *cfg, st, log)
	if err != nil {
		return nil, nil, err
	}
	cfg.ServingNames = append(cfg.ServingNames, kp.cfg.ServingNames()...)
	if cfg.ExternalCA != nil {
		kp.stop()
		return nil, nil, errors.New("a user-supplied CA is not supported in Kubernetes mode yet")
	}
	authority, err := kp.loadCA(ctx, caConfig(*cfg, log.With("component", "ca")))
	if err != nil {
		kp.stop()
		return nil, nil, fmt.Errorf("starting the CA: %w", err)
	}
	log.Info("on Kubernetes", "namespace", kp.cfg.Namespace, "identity", kp.cfg.Identity,
		"webhooks", kp.webhook.Addr().String(), "caSecret", kp.storage.String())
	return kp, &securityParts{ca: authority, auth: kp.auth}, nil
}

// newKubePlane connects to the API server and starts campaigning for the lead.
func newKubePlane(ctx context.Context, cfg Config, st *store.Store, log *slog.Logger) (*kubePlane, error) {
	k := cfg.Kubernetes
	k.setDefaults()
	if k.Config == nil {
		return nil, errors.New("Kubernetes mode needs an API server configuration")
	}
	client, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		return nil, fmt.Errorf("connecting to the API server: %w", err)
	}
	dyn, err := dynamic.NewForConfig(k.Config)
	if err != nil {
		return nil, fmt.Errorf("connecting to the API server: %w", err)
	}
	kp := &kubePlane{cfg: k, log: log, client: client, limits: cfg.Limits, caReady: make(chan struct{})}
	if kp.source, err = kubesource.New(kubesource.Config{Client: client, Dynamic: dyn, Store: st,
		Debounce: k.Debounce, Logger: log.With("component", "kube-source")}); err != nil {
		return nil, err
	}
	if kp.auth, err = tokenauth.New(tokenauth.Config{Client: client, Audience: k.TokenAudience, TrustDomain: cfg.TrustDomain}); err != nil {
		return nil, err
	}
	if kp.elector, err = leader.New(leader.Config{
		Client: client, Namespace: k.Namespace, Name: k.LeaseName, Identity: k.Identity,
		LeaseDuration: k.LeaseDuration, RenewDeadline: k.RenewDeadline, RetryPeriod: k.RetryPeriod,
		Lead: kp.lead, Logger: log.With("component", "leader"),
	}); err != nil {
		return nil, err
	}
	if kp.storage, err = casecret.New(casecret.Config{Client: client, Namespace: k.Namespace, Name: k.CASecret,
		MayCreate: kp.elector.IsLeader, Labels: map[string]string{install.ManagedByLabel: install.Name}}); err != nil {
		return nil, err
	}
	kp.webhook = k.WebhookListener
	if kp.webhook == nil {
		if kp.webhook, err = net.Listen("tcp", k.WebhookAddr); err != nil {
			return nil, fmt.Errorf("listening for webhooks: %w", err)
		}
	}
	ectx, cancel := context.WithCancel(ctx)
	kp.cancel = cancel
	kp.wg.Add(1)
	go func() {
		defer kp.wg.Done()
		if err := kp.elector.Run(ectx); err != nil {
			log.Error("leader election", "err", err)
		}
	}()
	return kp, nil
}

// stop ends leader election (releasing the Lease) and closes the webhook listener if
// it was never served.
func (kp *kubePlane) stop() {
	kp.cancel()
	kp.wg.Wait()
	kp.webhook.Close()
}

// loadCA loads the CA root from the Secret; the leader creates it when there is none,
// the others wait for it.
func (kp *kubePlane) loadCA(ctx context.Context, cfg ca.Config) (*ca.CA, error) {
	cfg.Storage = kp.storage
	waiting := false
	for {
		authority, err := ca.New(cfg)
		if err == nil {
			return authority, nil
		}
		retry := errors.Is(err, casecret.ErrNotCreated) || errors.Is(err, casecret.ErrConflict) ||
			apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) || apierrors.IsServiceUnavailable(err)
		if !retry {
			return nil, err
		}
		if !waiting && errors.Is(err, casecret.ErrNotCreated) {
			kp.log.Info("waiting for the leader to create the CA Secret", "secret", kp.storage.String(), "leader", kp.elector.Leader())
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("loading the CA from Secret %s: %w", kp.storage, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ready hands the running security to the leader's duties and the Secret watch,
// and the translator whose results the leader publishes as route status.
func (kp *kubePlane) ready(sec *security, st *store.Store, tr *translator) error {
	gw, err := gatewayclient.NewForConfig(kp.cfg.Config)
	if err != nil {
		return fmt.Errorf("connecting to the Gateway API: %w", err)
	}
	if kp.routes, err = routestatus.New(routestatus.Config{Client: gw, Statuses: routeStatuses(st, tr),
		Logger: kp.log.With("component", "routestatus")}); err != nil {
		return err
	}
	keeper, err := cabundle.New(cabundle.Config{Client: kp.client, Mutating: kp.cfg.MutatingWebhook,
		Validating: kp.cfg.ValidatingWebhook, Bundle: sec.ca.TrustBundlePEM, Interval: kp.cfg.CABundleInterval,
		RootCert: &cabundle.RootCert{Name: inject.RootCertConfigMap, Key: inject.RootCertKey,
			Selector: install.InjectionLabel + "=enabled", Labels: map[string]string{install.ManagedByLabel: install.Name}},
		Logger: kp.log.With("component", "cabundle")})
	if err != nil {
		return err
	}
	kp.sec, kp.keeper = sec, keeper
	previous := sec.onBundleChange
	sec.onBundleChange = func() {
		if previous != nil {
			previous()
		}
		keeper.Trigger()
	}
	close(kp.caReady)
	return nil
}

// lead runs the leader's duties for one term: keep the webhooks' caBundle current
// and write the Gateway API routes' status. (The CA Secret is created by loadCA
// while this replica leads.)
func (kp *kubePlane) lead(ctx context.Context) {
	select {
	case <-kp.caReady:
	case <-ctx.Done():
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		kp.routes.Run(ctx)
	}()
	kp.keeper.Run(ctx)
	wg.Wait()
}

// routeStatuses computes the routes' status from the latest translation, when it
// is of the store's current configuration (else there is no consistent answer).
func routeStatuses(st *store.Store, tr *translator) func() ([]model.RouteStatus, bool) {
	return func() ([]model.RouteStatus, bool) {
		s, snap := tr.state.Load(), st.Snapshot()
		if s == nil || s.ConfigVersion != snap.Version || snap.Config == nil {
			return nil, false
		}
		return model.RouteStatuses(s.Mesh, snap.Config.HTTPRoutes, snap.Config.GRPCRoutes), true
	}
}

// watchCA reloads the CA when another replica rotated the root in the Secret.
func (kp *kubePlane) watchCA(ctx context.Context) error {
	kp.storage.Watch(ctx, kp.cfg.CASecretInterval, func() {
		changed, err := kp.sec.ca.Reload()
		if err != nil {
			kp.log.Warn("reloading the CA from its Secret", "err", err)
			return
		}
		if changed {
			kp.sec.bundleChanged()
		}
	}, kp.log)
	return nil
}

// serveWebhooks serves the admission webhooks over TLS, with the serving certificate
// the control plane issues itself, until ctx ends.
func (kp *kubePlane) serveWebhooks(ctx context.Context) error {
	log := kp.log.With("component", "webhook")
	lim := kp.limits.WithBodyLimit(serverlimits.DefaultMaxBodyBytes)
	srv := lim.Server(webhook.Handler(webhook.Config{Inject: kp.cfg.Inject, Logger: log}), log)
	ln := lim.TLSListener(kp.webhook, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.sec.serving.get})
	return serveHTTP(ctx, srv, ln)
}

// sourceSet is the configuration sources (files, Kubernetes) as the one fileSource
// the translator waits for and reports the problems of.
type sourceSet struct {
	sources []fileSource
	synced  chan struct{}
}

var _ fileSource = (*sourceSet)(nil)

func newSourceSet(sources ...fileSource) *sourceSet {
	return &sourceSet{sources: sources, synced: make(chan struct{})}
}

// Synced is closed once every source has synced (after run saw them).
func (s *sourceSet) Synced() <-chan struct{} { return s.synced }

// Errors are every source's problems.
func (s *sourceSet) Errors() []error {
	var out []error
	for _, src := range s.sources {
		out = append(out, src.Errors()...)
	}
	return out
}

// run waits for every source to sync, then closes Synced.
func (s *sourceSet) run(ctx context.Context) error {
	for _, src := range s.sources {
		select {
		case <-src.Synced():
		case <-ctx.Done():
			return nil
		}
	}
	close(s.synced)
	return nil
}

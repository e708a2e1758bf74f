package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"

	"trellis.dev/trellis/internal/analyze"
	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/source/file"
	"trellis.dev/trellis/internal/store"
	"trellis.dev/trellis/internal/xdsgen"
	"trellis.dev/trellis/internal/xdsserver"
)

// fileSource is what the translator needs of the file source.
type fileSource interface {
	// Synced is closed once every file has been loaded once.
	Synced() <-chan struct{}
	// Errors are the current problems of the files.
	Errors() []error
}

var _ fileSource = (*file.Source)(nil)

type translatorConfig struct {
	store    *store.Store
	source   fileSource
	registry *registry.Registry
	xds      *xdsserver.Server
	metrics  prometheus.Registerer
	logger   *slog.Logger
	debounce time.Duration
	maxDelay time.Duration
	// trustBundle is the CA's current trust bundle (PEM), sent as the ROOTCA secret
	// to the proxies that take part in mutual TLS.
	trustBundle func() []byte
	// buildOptions configure model.Build (trust domain, root namespace).
	buildOptions []model.Option
	// warmup bounds how long the first push waits for the declared Workloads'
	// sidecars to register (see warmup); zero: no wait.
	warmup time.Duration
	// jwks, if set, fetches the key sets of jwksUri.
	jwks jwksSource
	// discovery, if set, gives the services' endpoints known from service discovery
	// (Kubernetes EndpointSlices).
	discovery endpointSource
	// rateLimits, if set, is the embedded rate-limit service, given the
	// RateLimitPolicies before every push.
	rateLimits *rateLimitPlane
}

// endpointSource is what the translator needs of service discovery.
type endpointSource interface {
	// Endpoints are the current endpoints.
	Endpoints() []model.DiscoveredEndpoint
	// Subscribe signals changes of Endpoints.
	Subscribe() (<-chan struct{}, func())
}

// translator turns the store and the registry into every proxy's resources.
type translator struct {
	translatorConfig
	duration prometheus.Histogram
	// problems counts the current configuration problems by class.
	problems *prometheus.GaugeVec
	// logged are the problems already logged, so each is logged once while it lasts.
	logged map[string]bool
	// locator points traffic problems at their fields' lines in the files.
	locator *analyze.Locator
	// state is the latest translation, for the monitoring handlers; nil before the
	// first one.
	state atomic.Pointer[state]
	// kick asks for a translation without a change of the store or the registry (the
	// trust bundle changed).
	kick chan struct{}
	// warm holds pushes at start; owned by run's goroutine.
	warm warmup
	// own keeps the proxies' own resources between translations; owned by run's
	// goroutine.
	own ownCache
}

// state is one translation's result, immutable once published. Problems are those of
// the translation; the invalid files are the file source's, read live (an invalid
// edit changes nothing to translate).
type state struct {
	ConfigVersion uint64                     `json:"configVersion"`
	Time          time.Time                  `json:"time"`
	Mesh          *model.Mesh                `json:"mesh"`
	Proxies       map[string]*model.Proxy    `json:"proxies"`
	Problems      []string                   `json:"problems"`
	resources     map[string]xdsserver.Proxy // by node ID
}

func newTranslator(cfg translatorConfig) (*translator, error) {
	t := &translator{
		translatorConfig: cfg,
		logged:           make(map[string]bool),
		kick:             make(chan struct{}, 1),
		locator:          &analyze.Locator{ReadFile: os.ReadFile},
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "trellis_translation_duration_seconds",
			Help:    "Time to translate configuration and registrations into every proxy's resources and push them.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
		problems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "trellis_config_problems",
			Help: "Configuration problems of the latest translation, by class: error (not applied), unsupported (a field Trellis does not implement), warning.",
		}, []string{"class"}),
	}
	for _, c := range []prometheus.Collector{t.duration, t.problems} {
		if err := cfg.metrics.Register(c); err != nil {
			return nil, fmt.Errorf("registering translator metrics: %w", err)
		}
	}
	return t, nil
}

// run translates once the file source has loaded every file, then after every
// (debounced) change, until ctx ends.
func (t *translator) run(ctx context.Context) error {
	storeChanged, unsubStore := t.store.Subscribe()
	defer unsubStore()
	regChanged, unsubReg := t.registry.Subscribe()
	defer unsubReg()
	var jwksChanged <-chan struct{} // nil without a fetcher: never ready
	if t.jwks != nil {
		jwksChanged = t.jwks.Changed()
	}
	var discoveryChanged <-chan struct{} // nil without discovery: never ready
	if t.discovery != nil {
		ch, unsub := t.discovery.Subscribe()
		defer unsub()
		discoveryChanged = ch
	}

	t.warm.until = time.Now().Add(t.warmup)
	warmEnd := time.AfterFunc(t.warmup, t.trigger) // push at the deadline, if held
	defer warmEnd.Stop()
	select {
	case <-t.source.Synced():
	case <-ctx.Done():
		return nil
	}
	t.translate(ctx)

	// Stopped until a change arrives; since Go 1.23 a stopped or reset timer never
	// delivers a stale tick.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time // first change of the pending burst; zero: none pending
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-storeChanged:
		case <-regChanged:
		case <-discoveryChanged:
		case <-jwksChanged:
		case <-t.kick:
		case <-timer.C:
			first = time.Time{}
			t.translate(ctx)
			continue
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		wait := min(t.debounce, first.Add(t.maxDelay).Sub(now))
		timer.Reset(max(wait, 0))
	}
}

// trigger schedules a translation, as a change of the store would.
func (t *translator) trigger() {
	select {
	case t.kick <- struct{}{}:
	default: // one is pending already
	}
}

// translate builds the model and every registered proxy's resources, pushes them,
// logs new problems and publishes the result.
func (t *translator) translate(ctx context.Context) {
	start := time.Now()
	snap := t.store.Snapshot()
	instances := t.registry.Instances()
	opts := t.buildOptions
	if t.discovery != nil {
		opts = append(slices.Clip(opts), model.WithEndpoints(t.discovery.Endpoints()))
	}
	if t.jwks != nil {
		t.jwks.Want(model.JWKSURIs(snap.Config))
		opts = append(slices.Clip(opts), model.WithJWKS(t.jwks.Lookup))
	}
	mesh := model.Build(snap.Config, instances, opts...)
	t.rateLimits.setPolicies(snap.Config, t.logger)
	var rootCA []*tlsv3.Secret
	if t.trustBundle != nil {
		rootCA = []*tlsv3.Secret{xdsgen.RootCASecret(t.trustBundle())}
	}

	problems := []string{}
	for _, e := range snap.Errors {
		problems = append(problems, e.Error())
	}
	problems = append(problems, mesh.Errors...)
	for _, e := range t.locator.Locate(mesh.ConfigErrors) {
		problems = append(problems, e.Error())
	}
	errorCount := len(problems)
	for _, e := range t.locator.Locate(mesh.Unsupported) {
		problems = append(problems, "unsupported: "+e.Error())
	}
	for _, e := range t.locator.Locate(mesh.Warnings) {
		problems = append(problems, "warning: "+e.Error())
	}
	t.problems.WithLabelValues("error").Set(float64(errorCount))
	t.problems.WithLabelValues("unsupported").Set(float64(len(mesh.Unsupported)))
	t.problems.WithLabelValues("warning").Set(float64(len(mesh.Warnings)))
	proxies := make(map[string]*model.Proxy, len(instances))
	resources := make(map[string]xdsserver.Proxy, len(instances))
	gen := newGeneration(mesh, rootCA, &t.own)
	for _, inst := range instances {
		p := model.NewProxy(inst)
		mesh.AddPodInbound(p, inst.Metadata.PodIP)
		res, err := gen.proxy(inst, p)
		if err != nil {
			problems = append(problems, strings.Split(err.Error(), "\n")...)
		}
		proxies[inst.NodeID] = p
		resources[inst.NodeID] = res
	}
	var changed []string
	if t.warm.holding(snap.Config.Workloads, instances) {
		t.logger.Debug("holding the first push until every declared workload's sidecar registers", "registered", len(instances))
	} else {
		var err error
		changed, err = t.xds.PushProxies(ctx, resources)
		if err != nil && ctx.Err() == nil {
			t.logger.Error("pushing xDS resources", "err", err)
		}
	}
	t.duration.Observe(time.Since(start).Seconds())
	t.logProblems(problems)
	t.logger.Debug("translated", "configVersion", snap.Version, "proxies", len(instances), "scopes", len(gen.scoped),
		"pushed", len(changed), "took", time.Since(start))

	t.state.Store(&state{
		ConfigVersion: snap.Version,
		Time:          start,
		Mesh:          mesh,
		Proxies:       proxies,
		Problems:      problems,
		resources:     resources,
	})
}

// logProblems logs each problem once, when it appears; a problem that goes away and
// comes back is logged again.
func (t *translator) logProblems(problems []string) {
	current := make(map[string]bool, len(problems))
	for _, p := range problems {
		current[p] = true
		if !t.logged[p] {
			t.logger.Warn("configuration problem", "problem", p)
		}
	}
	for p := range t.logged {
		if !current[p] {
			t.logger.Info("configuration problem resolved", "problem", p)
		}
	}
	t.logged = current
}

// generation generates the resources of one translation's proxies. The scoped part
// of a proxy's resources (xdsgen.GenerateScoped) is generated once per scope key and
// shared by every proxy of the scope; only each proxy's own part is generated per
// proxy.
type generation struct {
	mesh   *model.Mesh
	scopes *xdsgen.Scopes
	rootCA []*tlsv3.Secret
	scoped map[string]*xdsgen.Resources // by scope key
	// own are the previous translation's own resources; next this one's.
	own, next *ownCache
	inputs    ownInputs
}

// newGeneration starts the generation of mesh's proxies, reusing what own holds
// and leaving in own, when done, this generation's own resources.
func newGeneration(mesh *model.Mesh, rootCA []*tlsv3.Secret, own *ownCache) *generation {
	prev := *own
	own.entries = make(map[string]ownEntry, len(prev.entries))
	return &generation{mesh: mesh, scopes: xdsgen.NewScopes(mesh), rootCA: rootCA,
		scoped: make(map[string]*xdsgen.Resources), own: &prev, next: own, inputs: newOwnInputs(mesh)}
}

// proxy returns the resources of a sidecar. The errors of its scope's part are
// returned with the first proxy of the scope only (they name that proxy), so each
// is reported once.
func (g *generation) proxy(inst registry.Instance, p *model.Proxy) (xdsserver.Proxy, error) {
	if inst.Metadata.Proxyless == bootstrap.ProxylessGRPC {
		// grpc-go's own xDS client: the shapes it implements, its certificates from
		// the bootstrap's certificate provider rather than SDS. Nothing is shared
		// with the sidecars' scopes.
		res, err := xdsgen.GenerateGRPC(g.mesh, p)
		return xdsserver.Proxy{Own: res}, err
	}
	var scopedErr error
	scopeKey := g.scopes.Key(p)
	scoped, ok := g.scoped[scopeKey]
	if !ok {
		scoped, scopedErr = g.scopes.Generate(p)
		if p.MTLS {
			scoped.Secrets = g.rootCA
		}
		g.scoped[scopeKey] = scoped
	}
	key := g.inputs.key(g.mesh, inst, p)
	e, ok := g.own.entries[p.ID]
	if !ok || key == "" || e.key != key {
		e.key = key
		e.res, e.err = xdsgen.GenerateOwn(g.mesh, p)
	}
	if key != "" {
		g.next.entries[p.ID] = e
	}
	return xdsserver.Proxy{Scoped: scoped, Own: e.res}, errors.Join(scopedErr, e.err)
}

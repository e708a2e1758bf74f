package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubeobj"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/store"
)

// Defaults of Config.
const (
	DefaultSourceName  = "kubernetes"
	DefaultDebounce    = 100 * time.Millisecond
	DefaultRecheckCRDs = 30 * time.Second
	// maxDelay bounds how long a burst of changes may delay an update.
	maxDelay = time.Second
)

// Config configures a Source.
type Config struct {
	// Client and Dynamic reach the API server; required.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Store receives the configuration as the source SourceName; required.
	Store *store.Store
	// SourceName names the source in the store; default "kubernetes".
	SourceName string
	// Kinds are the custom resource kinds to watch; default install.Kinds().
	Kinds []install.Kind
	// Debounce is the quiet period after a change before the store is updated;
	// default 100ms.
	Debounce time.Duration
	// RecheckCRDs is how often kinds whose CRD is not installed are looked for again;
	// default 30s.
	RecheckCRDs time.Duration
	// Logger receives invalid objects (one line per problem) and missing CRDs;
	// default slog.Default().
	Logger *slog.Logger
}

// Source watches the API server and feeds the store and the discovered endpoints.
type Source struct {
	cfg    Config
	synced chan struct{}
	dirty  chan struct{}

	// Owned by Run's goroutine.
	services   listerscorev1.ServiceLister
	pods       listerscorev1.PodLister
	slices     listersdiscoveryv1.EndpointSliceLister
	dynFactory dynamicinformer.DynamicSharedInformerFactory
	watched    []watchedKind
	missing    []install.Kind
	parsedObjs map[string]parsed // by kind/namespace/name
	warned     bool              // missing CRDs were logged

	mu        sync.Mutex // guards the fields below
	endpoints []model.DiscoveredEndpoint
	errs      []error
	subs      map[chan struct{}]struct{}
}

// New returns a Source; call Run.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Store == nil {
		return nil, errors.New("kubernetes source: Client, Dynamic and Store are required")
	}
	if cfg.SourceName == "" {
		cfg.SourceName = DefaultSourceName
	}
	if cfg.Kinds == nil {
		cfg.Kinds = install.Kinds()
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.RecheckCRDs <= 0 {
		cfg.RecheckCRDs = DefaultRecheckCRDs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Source{
		cfg:        cfg,
		synced:     make(chan struct{}),
		dirty:      make(chan struct{}, 1),
		parsedObjs: map[string]parsed{},
		subs:       map[chan struct{}]struct{}{},
	}, nil
}

// Synced is closed once the caches have filled and the store holds the cluster's
// configuration.
func (s *Source) Synced() <-chan struct{} { return s.synced }

// Errors are the current problems: the custom resources that are invalid and skipped,
// one error per problem, naming the object and the field.
func (s *Source) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// Endpoints are the ready endpoints of the Services, from their EndpointSlices,
// sorted. The caller must not modify them.
func (s *Source) Endpoints() []model.DiscoveredEndpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints
}

// Subscribe returns a channel that receives a value after the endpoints change
// (coalesced, buffered 1), and a func that unsubscribes.
func (s *Source) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *Source) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// Run starts the informers, fills the store once they have synced, then keeps it
// current until ctx ends. It returns an error only if the informers cannot start.
func (s *Source) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(s.cfg.Client, 0)
	s.dynFactory = dynamicinformer.NewDynamicSharedInformerFactory(s.cfg.Dynamic, 0)
	defer factory.Shutdown()
	defer s.dynFactory.Shutdown()

	svcInformer := factory.Core().V1().Services()
	podInformer := factory.Core().V1().Pods()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	if err := podInformer.Informer().SetTransform(trimPod); err != nil {
		return fmt.Errorf("kubernetes source: %w", err)
	}
	changed := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.markDirty() },
		UpdateFunc: func(any, any) { s.markDirty() },
		DeleteFunc: func(any) { s.markDirty() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInformer.Informer(), sliceInformer.Informer()} {
		if _, err := inf.AddEventHandler(changed); err != nil {
			return fmt.Errorf("kubernetes source: %w", err)
		}
	}
	podChanged := changed
	podChanged.UpdateFunc = func(oldObj, newObj any) {
		o, ok1 := oldObj.(*corev1.Pod)
		n, ok2 := newObj.(*corev1.Pod)
		if !ok1 || !ok2 || !sameEndpointInfo(o, n) {
			s.markDirty()
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(podChanged); err != nil {
		return fmt.Errorf("kubernetes source: %w", err)
	}
	s.services, s.pods, s.slices = svcInformer.Lister(), podInformer.Lister(), sliceInformer.Lister()
	s.missing = slices.Clone(s.cfg.Kinds)
	if err := s.watchInstalledKinds(); err != nil {
		return err
	}

	factory.Start(ctx.Done())
	s.dynFactory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok && ctx.Err() == nil {
			return fmt.Errorf("kubernetes source: syncing the %v cache failed", typ)
		}
	}
	s.dynFactory.WaitForCacheSync(ctx.Done())
	if ctx.Err() != nil {
		return nil
	}
	s.update()
	close(s.synced)

	recheck := time.NewTicker(s.cfg.RecheckCRDs)
	defer recheck.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time // first change of the pending burst; zero: none pending
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.dirty:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			// A steady stream of changes delays an update by at most maxDelay.
			timer.Reset(max(min(s.cfg.Debounce, first.Add(maxDelay).Sub(now)), 0))
		case <-timer.C:
			first = time.Time{}
			s.update()
		case <-recheck.C:
			if len(s.missing) == 0 {
				continue
			}
			if err := s.watchInstalledKinds(); err != nil {
				s.cfg.Logger.Warn("looking for CRDs", "err", err)
				continue
			}
			s.dynFactory.Start(ctx.Done())
			s.dynFactory.WaitForCacheSync(ctx.Done())
			s.markDirty()
		}
	}
}

// watchInstalledKinds adds an informer for every missing kind whose CRD is now
// installed.
func (s *Source) watchInstalledKinds() error {
	var still []install.Kind
	for _, k := range s.missing {
		gvr, ok, err := kubeobj.ServedVersion(s.cfg.Client.Discovery(), k)
		if err != nil {
			return fmt.Errorf("kubernetes source: %w", err)
		}
		if !ok {
			still = append(still, k)
			continue
		}
		wk := watchedKind{Kind: k, gvr: gvr}
		inf := s.dynFactory.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.markDirty() },
			UpdateFunc: func(any, any) { s.markDirty() },
			DeleteFunc: func(any) { s.markDirty() },
		}); err != nil {
			return fmt.Errorf("kubernetes source: watching %s: %w", gvr, err)
		}
		s.watched = append(s.watched, wk)
		s.cfg.Logger.Debug("watching", "resource", gvr.String())
	}
	if len(still) > 0 && len(still) != len(s.missing) || len(still) > 0 && len(s.watched) == 0 && !s.warned {
		names := make([]string, len(still))
		for i, k := range still {
			names[i] = k.CRDName()
		}
		s.cfg.Logger.Warn("CRDs not installed; their kinds are not read until they are (trellis install)", "crds", names)
		s.warned = true
	}
	s.missing = still
	return nil
}

// update rebuilds the configuration and the endpoints from the caches, replaces the
// source in the store, and signals subscribers if the endpoints changed.
func (s *Source) update() {
	set, errs := s.buildConfig()
	eps := s.buildEndpoints()
	s.cfg.Store.Replace(s.cfg.SourceName, set)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = errs
	if reflect.DeepEqual(eps, s.endpoints) {
		return
	}
	s.endpoints = eps
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// buildConfig is every Service and valid custom resource as one Set, and the
// problems of the invalid ones (logged once per version of an object).
func (s *Source) buildConfig() (*config.Set, []error) {
	var sets []*config.Set
	svcSet := &config.Set{}
	services, _ := s.services.List(labels.Everything())
	for _, svc := range services {
		if cs, ok := kubeobj.ConvertService(svc); ok {
			svcSet.Services = append(svcSet.Services, cs)
		}
	}
	sets = append(sets, svcSet)

	var errs []error
	seen := map[string]bool{}
	for _, wk := range s.watched {
		objs, err := s.dynFactory.ForResource(wk.gvr).Lister().List(labels.Everything())
		if err != nil {
			continue
		}
		for _, o := range objs {
			obj, ok := o.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			key := wk.Kind.Kind + "/" + obj.GetNamespace() + "/" + obj.GetName()
			seen[key] = true
			p, cached := s.parsedObjs[key]
			if !cached || p.resourceVersion != obj.GetResourceVersion() {
				p = parseObject(wk, obj)
				s.parsedObjs[key] = p
				s.logInvalid(wk, obj, p.errs)
			}
			if p.set != nil {
				sets = append(sets, p.set)
			}
			for _, e := range p.errs {
				errs = append(errs, e)
			}
		}
	}
	for key, p := range s.parsedObjs {
		if !seen[key] {
			if len(p.errs) > 0 {
				s.cfg.Logger.Info("invalid object gone", "object", key)
			}
			delete(s.parsedObjs, key)
		}
	}
	set, dups := config.Combine(sets...)
	for _, e := range dups {
		errs = append(errs, e)
	}
	return set, errs
}

// logInvalid logs each problem of an object that is skipped, at Warn.
func (s *Source) logInvalid(wk watchedKind, obj *unstructured.Unstructured, errs config.ErrorList) {
	for _, e := range errs {
		s.cfg.Logger.Warn("invalid object skipped", "kind", wk.Kind.Kind, "namespace", obj.GetNamespace(),
			"name", obj.GetName(), "field", e.Field, "problem", e.Msg)
	}
}

// buildEndpoints is the ready endpoints of every Service from its EndpointSlices.
func (s *Source) buildEndpoints() []model.DiscoveredEndpoint {
	all, _ := s.slices.List(labels.Everything())
	pod := func(ns, name string) (podInfo, bool) {
		p, err := s.pods.Pods(ns).Get(name)
		if err != nil {
			return podInfo{}, false
		}
		return infoOf(p), true
	}
	var out []model.DiscoveredEndpoint
	for _, slice := range all {
		name := slice.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		svc, err := s.services.Services(slice.Namespace).Get(name)
		if err != nil {
			continue
		}
		out = append(out, sliceEndpoints(slice, svc, pod)...)
	}
	sortEndpoints(out)
	return slices.CompactFunc(out, func(a, b model.DiscoveredEndpoint) bool {
		return a.Namespace == b.Namespace && a.Service == b.Service && a.Port == b.Port && a.Address == b.Address
	})
}

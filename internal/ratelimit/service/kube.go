package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubeobj"
	"trellis.dev/trellis/internal/ratelimit"
)

// debounce is how long the Kubernetes watch waits after a change for more before it
// applies the policies: a `kubectl apply` of many policies is one update.
const debounce = 200 * time.Millisecond

// rateLimitPolicies is the one resource the Kubernetes watch reads.
var rateLimitPolicies = schema.GroupVersionResource{Group: install.TrellisGroup, Version: "v1alpha1", Resource: "ratelimitpolicies"}

// policySink merges the policies of the sources (config files, Kubernetes) and
// applies them to the server. Its mutex serializes the sources' updates.
type policySink struct {
	srv *ratelimit.Server
	log *slog.Logger

	mu      sync.Mutex
	sources map[string][]*v1alpha1.RateLimitPolicy
}

func newPolicySink(srv *ratelimit.Server, log *slog.Logger) *policySink {
	return &policySink{srv: srv, log: log, sources: map[string][]*v1alpha1.RateLimitPolicy{}}
}

// set replaces source's policies and applies every source's; on error the previous
// policies stay in force (and are logged).
func (s *policySink) set(source string, policies []*v1alpha1.RateLimitPolicy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.sources[source]
	s.sources[source] = policies
	var all []*v1alpha1.RateLimitPolicy
	for _, name := range slices.Sorted(maps.Keys(s.sources)) {
		all = append(all, s.sources[name]...)
	}
	if err := s.srv.SetPolicies(all); err != nil {
		if had {
			s.sources[source] = prev
		} else {
			delete(s.sources, source)
		}
		s.log.Error("rate-limit policies not applied; the previous ones stay", "source", source, "error", err)
		return
	}
	s.log.Info("rate-limit policies applied", "source", source, "policies", len(policies), "total", len(all))
}

// parsedPolicy is the decoding of one version of one object; nil policy when invalid.
type parsedPolicy struct {
	resourceVersion string
	policy          *v1alpha1.RateLimitPolicy
}

// kubeWatch keeps the RateLimitPolicies of the API server applied to a sink.
type kubeWatch struct {
	informer cache.SharedIndexInformer
	sink     *policySink
	log      *slog.Logger
	changed  chan struct{} // capacity 1: a change not applied yet
	parsed   map[string]parsedPolicy
}

// watchKubernetes starts an informer on RateLimitPolicies, waits until it has listed
// them all, applies them, and keeps them applied (goroutines in wg, until ctx is done).
func watchKubernetes(ctx context.Context, rc *rest.Config, sink *policySink, log *slog.Logger, wg *sync.WaitGroup) error {
	client, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	w := &kubeWatch{
		informer: dynamicinformer.NewFilteredDynamicInformer(client, rateLimitPolicies, "", 0, cache.Indexers{}, nil).Informer(),
		sink:     sink,
		log:      log,
		changed:  make(chan struct{}, 1),
		parsed:   map[string]parsedPolicy{},
	}
	notify := func(any) {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	if _, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	}); err != nil {
		return fmt.Errorf("watching RateLimitPolicies: %w", err)
	}
	wg.Go(func() { w.informer.RunWithContext(ctx) })
	log.Info("listing RateLimitPolicies from the API server", "host", rc.Host)
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return fmt.Errorf("listing RateLimitPolicies: %w", context.Cause(ctx))
	}
	select { // the initial list is applied now, not after the debounce
	case <-w.changed:
	default:
	}
	w.apply()
	wg.Go(func() { w.run(ctx) })
	return nil
}

// run applies the policies after each burst of changes, until ctx is done.
func (w *kubeWatch) run(ctx context.Context) {
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
			timer.Reset(debounce)
		case <-timer.C:
			w.apply()
		}
	}
}

// apply decodes every object of the informer's cache (reusing the decoding of an
// unchanged version) and gives the valid ones to the sink; an invalid one is logged
// once per version and left out.
func (w *kubeWatch) apply() {
	objs := w.informer.GetStore().List()
	seen := make(map[string]bool, len(objs))
	var policies []*v1alpha1.RateLimitPolicy
	for _, o := range objs {
		obj, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		key := obj.GetNamespace() + "/" + obj.GetName()
		seen[key] = true
		p, ok := w.parsed[key]
		if !ok || p.resourceVersion != obj.GetResourceVersion() {
			p = parsedPolicy{resourceVersion: obj.GetResourceVersion(), policy: w.decode(obj)}
			w.parsed[key] = p
		}
		if p.policy != nil {
			policies = append(policies, p.policy)
		}
	}
	for key := range w.parsed {
		if !seen[key] {
			delete(w.parsed, key)
		}
	}
	w.sink.set("kubernetes", policies)
}

// decode decodes obj with internal/config, as a mesh file's document, so that it gets
// the same defaults, validation and messages as a --config file and the validating
// webhook; nil (logged, with each problem's field) when it is invalid.
func (w *kubeWatch) decode(obj *unstructured.Unstructured) *v1alpha1.RateLimitPolicy {
	log := w.log.With("namespace", obj.GetNamespace(), "name", obj.GetName(), "resource_version", obj.GetResourceVersion())
	doc, err := kubeobj.ConfigDocument(obj)
	if err != nil {
		log.Error("RateLimitPolicy skipped: encoding it", "error", err)
		return nil
	}
	where := "kubernetes:" + rateLimitPolicies.Resource + "." + rateLimitPolicies.Group + "/" + obj.GetNamespace() + "/" + obj.GetName()
	set, err := config.Parse(where, doc)
	if err != nil {
		var list config.ErrorList
		if !errors.As(err, &list) {
			log.Error("RateLimitPolicy skipped: invalid", "error", err)
			return nil
		}
		for _, e := range list {
			log.Error("RateLimitPolicy skipped: invalid", "field", e.Field, "problem", e.Msg)
		}
		return nil
	}
	if len(set.RateLimitPolicies) != 1 {
		log.Error("RateLimitPolicy skipped: it decodes to no RateLimitPolicy", "kind", obj.GetKind())
		return nil
	}
	return set.RateLimitPolicies[0].RateLimitPolicy
}

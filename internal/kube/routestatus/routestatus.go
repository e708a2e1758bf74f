package routestatus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"trellis.dev/trellis/internal/model"
)

// ControllerName is what Trellis writes in status.parents[].controllerName.
const ControllerName gatewayv1.GatewayController = "trellis.dev/mesh"

// Config configures a Writer.
type Config struct {
	// Client reaches the Gateway API; required.
	Client gatewayclient.Interface
	// Statuses returns the routes' statuses now; false when there is no consistent
	// answer yet (the pass is skipped). Required.
	Statuses func() ([]model.RouteStatus, bool)
	// Interval is how often Run makes a pass without a Trigger; default 1s.
	Interval time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Writer writes route status; see the package documentation.
type Writer struct {
	cfg     Config
	trigger chan struct{}
	// written is the wanted status last written (or found in place), by route.
	written map[routeKey][]model.RouteStatus
}

type routeKey struct{ kind, namespace, name string }

// New checks cfg and returns a Writer.
func New(cfg Config) (*Writer, error) {
	if cfg.Client == nil || cfg.Statuses == nil {
		return nil, errors.New("route status writer: Client and Statuses are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Writer{cfg: cfg, trigger: make(chan struct{}, 1)}, nil
}

// Trigger asks Run for a pass now.
func (w *Writer) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Run makes passes until ctx ends. Each run starts with an empty cache: a new
// leader checks every route once.
func (w *Writer) Run(ctx context.Context) {
	w.written = map[routeKey][]model.RouteStatus{}
	ticker := time.NewTicker(w.cfg.Interval)
	defer ticker.Stop()
	for {
		if err := w.Sync(ctx); err != nil && ctx.Err() == nil {
			w.cfg.Logger.Warn("writing route status", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.trigger:
		}
	}
}

// Sync makes one pass; it returns the first error, after trying every route.
func (w *Writer) Sync(ctx context.Context) error {
	statuses, ok := w.cfg.Statuses()
	if !ok {
		return nil
	}
	if w.written == nil {
		w.written = map[routeKey][]model.RouteStatus{}
	}
	byRoute := map[routeKey][]model.RouteStatus{}
	var order []routeKey
	for _, s := range statuses {
		k := routeKey{s.Kind, s.Namespace, s.Name}
		if _, seen := byRoute[k]; !seen {
			order = append(order, k)
		}
		byRoute[k] = append(byRoute[k], s)
	}
	for k := range w.written {
		if _, ok := byRoute[k]; !ok {
			delete(w.written, k)
		}
	}
	var errs []error
	for _, k := range order {
		want := byRoute[k]
		if prev, ok := w.written[k]; ok && apiequality.Semantic.DeepEqual(prev, want) {
			continue
		}
		if err := w.write(ctx, k, want); err != nil {
			if apierrors.IsNotFound(err) {
				continue // deleted since the translation; the next one drops it
			}
			errs = append(errs, fmt.Errorf("%s %s/%s: %w", k.kind, k.namespace, k.name, err))
			continue
		}
		w.written[k] = want
	}
	return errors.Join(errs...)
}

// write reads the route, merges this controller's entries and writes the status
// subresource if it changed. A conflict is left to the next pass.
func (w *Writer) write(ctx context.Context, k routeKey, want []model.RouteStatus) error {
	switch k.kind {
	case "HTTPRoute":
		api := w.cfg.Client.GatewayV1().HTTPRoutes(k.namespace)
		r, err := api.Get(ctx, k.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		parents := merge(r.Status.Parents, want, r.Generation, time.Now())
		if apiequality.Semantic.DeepEqual(parents, r.Status.Parents) {
			return nil
		}
		r.Status.Parents = parents
		if _, err := api.UpdateStatus(ctx, r, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating status: %w", err)
		}
	case "GRPCRoute":
		api := w.cfg.Client.GatewayV1().GRPCRoutes(k.namespace)
		r, err := api.Get(ctx, k.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		parents := merge(r.Status.Parents, want, r.Generation, time.Now())
		if apiequality.Semantic.DeepEqual(parents, r.Status.Parents) {
			return nil
		}
		r.Status.Parents = parents
		if _, err := api.UpdateStatus(ctx, r, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating status: %w", err)
		}
	default:
		return fmt.Errorf("unknown route kind %q", k.kind)
	}
	w.cfg.Logger.Info("route status written", "route", k.kind+" "+k.namespace+"/"+k.name)
	return nil
}

// merge returns the parents' entries with this controller's replaced by want, in
// want's order after the other controllers' entries. Conditions whose status did
// not change keep their lastTransitionTime.
func merge(current []gatewayv1.RouteParentStatus, want []model.RouteStatus, generation int64, now time.Time) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	var ours []gatewayv1.RouteParentStatus
	for _, p := range current {
		if p.ControllerName == ControllerName {
			ours = append(ours, p)
		} else {
			out = append(out, p)
		}
	}
	for _, s := range want {
		entry := gatewayv1.RouteParentStatus{ParentRef: s.Parent, ControllerName: ControllerName}
		for _, p := range ours {
			if apiequality.Semantic.DeepEqual(p.ParentRef, s.Parent) {
				entry.Conditions = append([]metav1.Condition(nil), p.Conditions...)
				break
			}
		}
		setCondition(&entry.Conditions, string(gatewayv1.RouteConditionAccepted), s.Accepted, generation, now)
		setCondition(&entry.Conditions, string(gatewayv1.RouteConditionResolvedRefs), s.ResolvedRefs, generation, now)
		out = append(out, entry)
	}
	return out
}

func setCondition(conds *[]metav1.Condition, typ string, c model.RouteCondition, generation int64, now time.Time) {
	status := metav1.ConditionFalse
	if c.OK {
		status = metav1.ConditionTrue
	}
	// SetStatusCondition keeps lastTransitionTime when the status is unchanged.
	meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: status, Reason: c.Reason,
		Message: c.Message, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)})
}

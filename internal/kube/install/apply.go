package install

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
)

// FieldManager is the server-side apply field manager of everything Install applies.
const FieldManager = "trellis-install"

// Action is what Apply or Uninstall did with one object.
type Action string

// The actions.
const (
	Applied Action = "applied"
	// Kept: a CRD that exists and was not installed by Trellis (no ManagedByLabel) is
	// neither changed nor deleted.
	Kept    Action = "kept"
	Deleted Action = "deleted"
	// Absent: Uninstall found nothing to delete.
	Absent Action = "absent"
	// Terminating: Uninstall found the object being deleted already (a namespace
	// waiting for its content to go).
	Terminating Action = "terminating"
)

// Result is what happened to one object.
type Result struct {
	Kind, Namespace, Name string
	Action                Action
}

func (r Result) String() string {
	name := r.Name
	if r.Namespace != "" {
		name = r.Namespace + "/" + r.Name
	}
	return fmt.Sprintf("%s %s %s", r.Kind, name, r.Action)
}

// Client applies and removes install objects through the Kubernetes API.
type Client struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	log    *slog.Logger
}

// NewClient builds a Client for the cluster cfg reaches. It reads the API server's
// discovery once, to map kinds to resources.
func NewClient(cfg *rest.Config, logger *slog.Logger) (*Client, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building discovery client: %w", err)
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		return nil, fmt.Errorf("reading API discovery: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{dyn: dyn, mapper: restmapper.NewDiscoveryRESTMapper(groups), log: logger}, nil
}

// resource is the dynamic client for o's kind and namespace.
func (c *Client) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("mapping %s to a resource: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// Apply server-side applies objs in order, except CRDs that exist and were not
// installed by Trellis, and waits for every CRD to be established before applying
// anything else.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, error) {
	var results []Result
	crdsDone := false
	for _, o := range objs {
		isCRD := o.GetKind() == "CustomResourceDefinition"
		if !isCRD && !crdsDone {
			if err := c.waitEstablished(ctx, objs); err != nil {
				return results, err
			}
			crdsDone = true
		}
		res, err := c.resource(o)
		if err != nil {
			return results, err
		}
		r := Result{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Action: Applied}
		if isCRD {
			foreign, err := c.foreign(ctx, res, o.GetName())
			if err != nil {
				return results, err
			}
			if foreign {
				c.log.Info("leaving a CRD installed by someone else as it is", "crd", o.GetName())
				results = append(results, Result{Kind: r.Kind, Name: r.Name, Action: Kept})
				continue
			}
		}
		if _, err := res.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return results, fmt.Errorf("applying %s: %w", r.ref(), err)
		}
		c.log.Debug("applied", "object", r.ref())
		results = append(results, r)
	}
	if !crdsDone {
		return results, c.waitEstablished(ctx, objs)
	}
	return results, nil
}

func (r Result) ref() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// foreign says whether the object name exists without ManagedByLabel=trellis.
func (c *Client) foreign(ctx context.Context, res dynamic.ResourceInterface, name string) (bool, error) {
	cur, err := res.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading %s: %w", name, err)
	}
	return cur.GetLabels()[ManagedByLabel] != Name, nil
}

// waitEstablished polls until every CRD among objs is Established.
func (c *Client) waitEstablished(ctx context.Context, objs []*unstructured.Unstructured) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		res, err := c.resource(o)
		if err != nil {
			return err
		}
		for {
			ok, err := established(ctx, res, o.GetName())
			if err != nil {
				return err
			}
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for CRD %s to be established: %w", o.GetName(), ctx.Err())
			case <-tick.C:
			}
		}
	}
	return nil
}

func established(ctx context.Context, res dynamic.ResourceInterface, name string) (bool, error) {
	u, err := res.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading CRD %s: %w", name, err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
		return false, fmt.Errorf("decoding CRD %s: %w", name, err)
	}
	return Established(&crd), nil
}

// Established says whether a CRD's Established condition is true.
func Established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range crd.Status.Conditions {
		if cond.Type == apiextensionsv1.Established {
			return cond.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// Uninstall deletes objs in reverse order. An object that is gone already is Absent;
// one that exists without ManagedByLabel=trellis (a CRD someone else installed) is
// Kept. Deletion is not awaited: a namespace and the CRDs finish deleting in the
// background.
func (c *Client) Uninstall(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, error) {
	var results []Result
	for _, o := range slices.Backward(objs) {
		res, err := c.resource(o)
		if err != nil {
			return results, err
		}
		r := Result{Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(), Action: Deleted}
		cur, err := res.Get(ctx, o.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			r.Action = Absent
		case err != nil:
			return results, fmt.Errorf("reading %s: %w", r.ref(), err)
		case cur.GetDeletionTimestamp() != nil:
			r.Action = Terminating
		case cur.GetLabels()[ManagedByLabel] != Name:
			c.log.Info("leaving an object installed by someone else as it is", "object", r.ref())
			r.Action = Kept
		default:
			err := res.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
			switch {
			case apierrors.IsNotFound(err):
				r.Action = Absent
			case err != nil:
				return results, fmt.Errorf("deleting %s: %w", r.ref(), err)
			}
		}
		results = append(results, r)
	}
	return results, nil
}

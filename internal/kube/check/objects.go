package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
)

// MeshObjects lists every custom resource of install.Kinds in the cluster (in the
// first version the API server serves; kinds whose CRD is absent are skipped) and
// decodes each strictly with internal/config, positioned at
// "kubernetes:<resource>/<namespace>/<name>" as the Kubernetes source does. It
// returns the decoded objects, one Set each, and the problems of the objects that
// did not decode.
func MeshObjects(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface) ([]*config.Set, config.ErrorList, error) {
	var sets []*config.Set
	var errs config.ErrorList
	for _, kind := range install.Kinds() {
		gvr, ok, err := servedVersion(disc, kind)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		list, err := dyn.Resource(gvr).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("listing %s: %w", gvr.GroupResource(), err)
		}
		for i := range list.Items {
			set, problems := decode(kind, &list.Items[i])
			if set != nil {
				sets = append(sets, set)
			}
			errs = append(errs, problems...)
		}
	}
	return sets, errs, nil
}

// servedVersion is the first of kind's versions the API server serves.
func servedVersion(d discovery.DiscoveryInterface, kind install.Kind) (schema.GroupVersionResource, bool, error) {
	for _, v := range kind.Versions {
		gv := kind.Group + "/" + v
		list, err := d.ServerResourcesForGroupVersion(gv)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return schema.GroupVersionResource{}, false, fmt.Errorf("discovering %s: %w", gv, err)
		}
		for _, r := range list.APIResources {
			if r.Name == kind.Plural {
				return schema.GroupVersionResource{Group: kind.Group, Version: v, Resource: kind.Plural}, true, nil
			}
		}
	}
	return schema.GroupVersionResource{}, false, nil
}

// decode parses one object as a mesh file's document.
func decode(kind install.Kind, obj *unstructured.Unstructured) (*config.Set, config.ErrorList) {
	pos := config.Position{File: "kubernetes:" + kind.CRDName() + "/" + obj.GetNamespace() + "/" + obj.GetName()}
	fail := func(msg string) config.ErrorList {
		return config.ErrorList{{Pos: pos, Kind: kind.Kind, Name: obj.GetNamespace() + "/" + obj.GetName(), Msg: msg}}
	}
	doc, err := document(obj)
	if err != nil {
		return nil, fail("encoding: " + err.Error())
	}
	set, err := config.Parse(pos.File, doc)
	var list config.ErrorList
	switch {
	case errors.As(err, &list):
		return nil, list
	case err != nil:
		return nil, fail(err.Error())
	}
	return set, nil
}

// document is the object as a user wrote it: without status and the metadata the
// API server maintains (creationTimestamp stays: the oldest conflicting policy wins).
func document(obj *unstructured.Unstructured) ([]byte, error) {
	content := obj.UnstructuredContent()
	out := make(map[string]any, len(content))
	for k, v := range content {
		if k != "status" {
			out[k] = v
		}
	}
	if meta, ok := content["metadata"].(map[string]any); ok {
		m := make(map[string]any, len(meta))
		for k, v := range meta {
			if !slices.Contains([]string{"managedFields", "resourceVersion", "generation", "uid", "selfLink"}, k) {
				m[k] = v
			}
		}
		out["metadata"] = m
	}
	return json.Marshal(out)
}

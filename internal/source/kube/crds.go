package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
)

// watchedKind is a custom resource kind and the version the source reads it in.
type watchedKind struct {
	install.Kind
	gvr schema.GroupVersionResource
}

// servedVersion finds the first of kind's versions that the API server serves; ok is
// false when it serves none (the CRD is not installed).
func servedVersion(d discovery.DiscoveryInterface, kind install.Kind) (schema.GroupVersionResource, bool, error) {
	for _, v := range kind.Versions {
		gv := kind.Group + "/" + v
		list, err := d.ServerResourcesForGroupVersion(gv)
		if err != nil {
			if isNotFound(err) {
				continue
			}
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

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

// parsed is the result of decoding one version of one object.
type parsed struct {
	resourceVersion string
	set             *config.Set
	errs            config.ErrorList
}

// parseObject decodes a custom resource strictly, as a mesh file's document: with
// internal/config, so that it gets the same defaults, validation and messages as in
// local mode and in the validating webhook.
func parseObject(kind watchedKind, obj *unstructured.Unstructured) parsed {
	p := parsed{resourceVersion: obj.GetResourceVersion()}
	doc, err := configDocument(obj)
	pos := objectPosition(kind.Plural+"."+kind.Group, obj.GetNamespace(), obj.GetName())
	if err != nil {
		p.errs = config.ErrorList{{Pos: pos, Kind: kind.Kind.Kind, Name: obj.GetNamespace() + "/" + obj.GetName(), Msg: "encoding: " + err.Error()}}
		return p
	}
	set, err := config.Parse(pos.File, doc)
	var list config.ErrorList
	switch {
	case errors.As(err, &list):
		p.errs = list
	case err != nil:
		p.errs = config.ErrorList{{Pos: pos, Kind: kind.Kind.Kind, Name: obj.GetNamespace() + "/" + obj.GetName(), Msg: err.Error()}}
	default:
		p.set = set
	}
	return p
}

// configDocument is the object as a user wrote it: without its status and the fields
// the API server maintains, which no mesh file carries and which would make every
// status update look like a change. creationTimestamp stays: the oldest of two
// conflicting policies wins.
func configDocument(obj *unstructured.Unstructured) ([]byte, error) {
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

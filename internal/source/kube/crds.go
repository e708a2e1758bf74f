package kube

import (
	"errors"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubeobj"
)

// watchedKind is a custom resource kind and the version the source reads it in.
type watchedKind struct {
	install.Kind
	gvr schema.GroupVersionResource
}

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
	doc, err := kubeobj.ConfigDocument(obj)
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

package check

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubeobj"
)

// MeshObjects reads what the control plane would read of the cluster's
// configuration: the Services (converted as the Kubernetes source does, so that
// rules naming them resolve) and every custom resource of install.Kinds (in the
// first version the API server serves; kinds whose CRD is absent are skipped), each
// decoded strictly with internal/config and positioned at
// "kubernetes:<resource>/<namespace>/<name>". It returns the decoded objects and the
// problems of the objects that did not decode.
func MeshObjects(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) ([]*config.Set, config.ErrorList, error) {
	svcs, err := client.CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing services: %w", err)
	}
	services := &config.Set{}
	for i := range svcs.Items {
		if s, ok := kubeobj.ConvertService(&svcs.Items[i]); ok {
			services.Services = append(services.Services, s)
		}
	}
	sets := []*config.Set{services}
	var errs config.ErrorList
	disc := client.Discovery()
	for _, kind := range install.Kinds() {
		gvr, ok, err := kubeobj.ServedVersion(disc, kind)
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

// decode parses one object as a mesh file's document.
func decode(kind install.Kind, obj *unstructured.Unstructured) (*config.Set, config.ErrorList) {
	pos := config.Position{File: "kubernetes:" + kind.CRDName() + "/" + obj.GetNamespace() + "/" + obj.GetName()}
	fail := func(msg string) config.ErrorList {
		return config.ErrorList{{Pos: pos, Kind: kind.Kind, Name: obj.GetNamespace() + "/" + obj.GetName(), Msg: msg}}
	}
	doc, err := kubeobj.ConfigDocument(obj)
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

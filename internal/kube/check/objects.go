package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
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
		if s, ok := convertService(&svcs.Items[i]); ok {
			services.Services = append(services.Services, s)
		}
	}
	sets := []*config.Set{services}
	var errs config.ErrorList
	disc := client.Discovery()
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

// convertService is the part of a Service the mesh uses, as the Kubernetes source
// (internal/source/kube) converts it: name, labels, selector, cluster IPs and TCP
// ports. ok is false for an ExternalName Service or one without a TCP port.
func convertService(svc *corev1.Service) (config.Service, bool) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return config.Service{}, false
	}
	out := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name, Namespace: svc.Namespace, Labels: svc.Labels, CreationTimestamp: svc.CreationTimestamp,
		},
		Spec: corev1.ServiceSpec{Selector: svc.Spec.Selector, ClusterIP: svc.Spec.ClusterIP, ClusterIPs: svc.Spec.ClusterIPs, Type: svc.Spec.Type},
	}
	for _, p := range svc.Spec.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			p.Protocol = corev1.ProtocolTCP
			p.NodePort = 0
			out.Spec.Ports = append(out.Spec.Ports, p)
		}
	}
	if len(out.Spec.Ports) == 0 {
		return config.Service{}, false
	}
	return config.Service{Pos: config.Position{File: "kubernetes:services/" + svc.Namespace + "/" + svc.Name}, Service: out}, true
}

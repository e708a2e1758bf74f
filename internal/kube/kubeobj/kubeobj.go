package kubeobj

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/install"
)

// serverFields are the metadata fields the API server maintains, which no mesh file
// carries.
var serverFields = []string{"managedFields", "resourceVersion", "generation", "uid", "selfLink"}

// ConfigDocument is the object as a user wrote it, as JSON: without its status and
// the metadata the API server maintains, which no mesh file carries and which would
// make every status update look like a change. creationTimestamp stays: the oldest
// of two conflicting policies wins.
func ConfigDocument(obj *unstructured.Unstructured) ([]byte, error) {
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
			if !slices.Contains(serverFields, k) {
				m[k] = v
			}
		}
		out["metadata"] = m
	}
	return json.Marshal(out)
}

// ServedVersion finds the first of kind's versions that the API server serves; ok is
// false when it serves none (the CRD is not installed).
func ServedVersion(d discovery.DiscoveryInterface, kind install.Kind) (gvr schema.GroupVersionResource, ok bool, err error) {
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

// ConvertService is the part of a Kubernetes Service the mesh uses, as a
// config.Service positioned at "kubernetes:services/<namespace>/<name>": its name,
// labels, selector, cluster IPs and TCP ports (the mesh carries TCP; UDP and SCTP
// ports are left out). ok is false for a Service the mesh does not serve: an
// ExternalName Service, or one without a TCP port.
func ConvertService(svc *corev1.Service) (_ config.Service, ok bool) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return config.Service{}, false
	}
	out := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              svc.Name,
			Namespace:         svc.Namespace,
			Labels:            svc.Labels,
			CreationTimestamp: svc.CreationTimestamp,
		},
		Spec: corev1.ServiceSpec{
			Selector:   svc.Spec.Selector,
			ClusterIP:  svc.Spec.ClusterIP,
			ClusterIPs: svc.Spec.ClusterIPs,
			Type:       svc.Spec.Type,
		},
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
	pos := config.Position{File: "kubernetes:services/" + svc.Namespace + "/" + svc.Name}
	return config.Service{Pos: pos, Service: out}, true
}

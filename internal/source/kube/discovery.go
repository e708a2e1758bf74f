package kube

import (
	"cmp"
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/kube/inject"
	"trellis.dev/trellis/internal/model"
)

// objectPosition is where a Kubernetes object is "written", for messages.
func objectPosition(resource, namespace, name string) config.Position {
	return config.Position{File: "kubernetes:" + resource + "/" + namespace + "/" + name}
}

// podInfo is what an endpoint needs of its pod.
type podInfo struct {
	labels         map[string]string
	serviceAccount string
	sidecar        bool
}

// trimPod keeps, of a Pod stored in the informer's cache, only what the source reads:
// the informer holds every pod of the cluster, so the rest is not kept.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone
	}
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, Labels: pod.Labels,
		},
		Spec:   corev1.PodSpec{ServiceAccountName: pod.Spec.ServiceAccountName},
		Status: corev1.PodStatus{PodIP: pod.Status.PodIP},
	}
	for _, c := range pod.Spec.InitContainers {
		out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name, RestartPolicy: c.RestartPolicy})
	}
	for _, c := range pod.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name})
	}
	return out, nil
}

// infoOf is a pod's labels, service account and whether it runs the sidecar (the
// injected trellis-proxy container, native or not).
func infoOf(pod *corev1.Pod) podInfo {
	info := podInfo{labels: pod.Labels, serviceAccount: pod.Spec.ServiceAccountName}
	if info.serviceAccount == "" {
		info.serviceAccount = "default"
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == inject.ProxyName {
				info.sidecar = true
			}
		}
	}
	return info
}

// sameEndpointInfo says whether two versions of a pod give its endpoints the same
// attributes (so that an update of its status alone changes nothing).
func sameEndpointInfo(a, b *corev1.Pod) bool {
	x, y := infoOf(a), infoOf(b)
	return x.serviceAccount == y.serviceAccount && x.sidecar == y.sidecar && mapsEqual(x.labels, y.labels)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sliceEndpoints are the ready endpoints of one EndpointSlice of svc, one per ready
// address and port. pod looks up the pod an endpoint's targetRef names.
func sliceEndpoints(slice *discoveryv1.EndpointSlice, svc *corev1.Service, pod func(namespace, name string) (podInfo, bool)) []model.DiscoveredEndpoint {
	if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
		return nil
	}
	// Slice ports are named after the Service's ports and carry the target port.
	type portPair struct{ service, target uint32 }
	var ports []portPair
	for _, sp := range slice.Ports {
		if sp.Port == nil || (sp.Protocol != nil && *sp.Protocol != corev1.ProtocolTCP) {
			continue
		}
		name := ""
		if sp.Name != nil {
			name = *sp.Name
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == name && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
				ports = append(ports, portPair{service: uint32(p.Port), target: uint32(*sp.Port)})
			}
		}
	}
	var out []model.DiscoveredEndpoint
	for _, ep := range slice.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		if len(ep.Addresses) == 0 {
			continue
		}
		var info podInfo
		nodeID := ""
		if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
			ns := cmp.Or(ref.Namespace, slice.Namespace)
			if pi, ok := pod(ns, ref.Name); ok {
				info = pi
			}
			nodeID = ref.Name + "." + ns
		}
		for _, pp := range ports {
			out = append(out, model.DiscoveredEndpoint{
				Service:        svc.Name,
				Namespace:      svc.Namespace,
				Port:           pp.service,
				Address:        net.JoinHostPort(ep.Addresses[0], strconv.FormatUint(uint64(pp.target), 10)),
				NodeID:         nodeID,
				Labels:         info.labels,
				ServiceAccount: info.serviceAccount,
				Sidecar:        info.sidecar,
			})
		}
	}
	return out
}

// sortEndpoints orders endpoints by service, port and address.
func sortEndpoints(eps []model.DiscoveredEndpoint) {
	slices.SortFunc(eps, func(a, b model.DiscoveredEndpoint) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.Port, b.Port), cmp.Compare(a.Address, b.Address), cmp.Compare(a.NodeID, b.NodeID))
	})
}

package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// reviewsService is a Service of shop with a ClusterIP; more ports follow it.
const reviewsService = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 8080}
`

func TestWithEndpoints(t *testing.T) {
	const svc = reviewsService
	const strict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  selector: {matchLabels: {version: v2}}
  mtls: {mode: STRICT}
`
	eps := []DiscoveredEndpoint{
		{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.1:8080", NodeID: "reviews-1.shop",
			Labels: map[string]string{"app": "reviews", "version": "v1"}, ServiceAccount: "reviews", Sidecar: true},
		{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.2:8080", NodeID: "reviews-2.shop",
			Labels: map[string]string{"app": "reviews", "version": "v2"}, ServiceAccount: "reviews", Sidecar: true},
		{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.3:8080", NodeID: "legacy.shop"},
		// Ignored: an unknown service, an unknown port.
		{Service: "ratings", Namespace: "shop", Port: 9080, Address: "10.1.0.4:8080"},
		{Service: "reviews", Namespace: "shop", Port: 80, Address: "10.1.0.5:8080"},
	}
	m := Build(parse(t, svc, strict), nil, WithEndpoints(eps))
	s := m.Service("reviews.shop.svc.cluster.local")
	if s == nil {
		t.Fatal("no service reviews.shop")
	}
	if diff := cmp.Diff([]string{"10.96.0.10"}, s.Addresses); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	type ep struct {
		Address, NodeID, Identity string
		MTLS                      MTLSMode
	}
	var got []ep
	for _, e := range s.Port(9080).Endpoints {
		got = append(got, ep{e.Address, e.NodeID, e.Identity, e.MTLS})
	}
	want := []ep{
		{"10.1.0.1:8080", "reviews-1.shop", "spiffe://cluster.local/ns/shop/sa/reviews", MTLSPermissive},
		{"10.1.0.2:8080", "reviews-2.shop", "spiffe://cluster.local/ns/shop/sa/reviews", MTLSStrict},
		{"10.1.0.3:8080", "legacy.shop", "spiffe://cluster.local/ns/shop/sa/default", MTLSDisable},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
}

func TestAddPodInbound(t *testing.T) {
	const svc = reviewsService + `  - {name: tcp-admin, port: 9090, targetPort: 7070}
---
apiVersion: v1
kind: Service
metadata: {name: reviews-alias, namespace: shop}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`
	eps := []DiscoveredEndpoint{
		{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.1:8080", NodeID: "reviews-1.shop", Sidecar: true,
			Labels: map[string]string{"app": "reviews"}},
		{Service: "reviews", Namespace: "shop", Port: 9090, Address: "10.1.0.1:7070", NodeID: "reviews-1.shop", Sidecar: true,
			Labels: map[string]string{"app": "reviews"}},
		// The same pod port through a second Service: one inbound port.
		{Service: "reviews-alias", Namespace: "shop", Port: 80, Address: "10.1.0.1:8080", NodeID: "reviews-1.shop", Sidecar: true},
		// A pod without a sidecar has no inbound ports to serve.
		{Service: "reviews", Namespace: "shop", Port: 9080, Address: "10.1.0.3:8080", NodeID: "legacy.shop"},
	}
	m := Build(parse(t, svc), nil, WithEndpoints(eps))
	tests := []struct {
		name, id, podIP string
		want            []InboundPort
		labels          map[string]string
	}{
		{name: "pod", id: "reviews-1.shop", podIP: "10.1.0.1", want: []InboundPort{
			{Name: "tcp-admin", Port: 7070, Protocol: "TCP", Target: "127.0.0.1:7070", Inbound: "10.1.0.1:7070"},
			{Name: "http", Port: 8080, Protocol: "HTTP", Target: "127.0.0.1:8080", Inbound: "10.1.0.1:8080"},
		}, labels: map[string]string{"app": "reviews"}},
		{name: "stale pod IP", id: "reviews-1.shop", podIP: "10.1.0.9"},
		{name: "no pod IP", id: "reviews-1.shop"},
		{name: "no sidecar", id: "legacy.shop", podIP: "10.1.0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Proxy{ID: tt.id}
			m.AddPodInbound(p, tt.podIP)
			if diff := cmp.Diff(tt.want, p.Inbound); diff != "" {
				t.Errorf("inbound (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.labels, p.Labels); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
		})
	}
}

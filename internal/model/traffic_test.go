package model

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/registry"
)

const reviewsDoc = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: http-admin, port: 9081}`

// summaryRoutes renders a port's routes for a proxy as "match -> action" lines.
func summaryRoutes(m *Mesh, fqdn string, port uint32, p *Proxy) []string {
	var out []string
	for _, r := range m.Service(fqdn).Port(port).RoutesFor(p) {
		var dests []string
		for _, d := range r.Destinations {
			dests = append(dests, d.Cluster.Name())
		}
		line := r.Source + " -> " + strings.Join(dests, ",")
		if r.DirectResponse != nil {
			line = r.Source + " -> direct"
		}
		out = append(out, line)
	}
	return out
}

func errorStrings(m *Mesh) []string {
	var out []string
	for _, e := range m.ConfigErrors {
		out = append(out, e.Error())
	}
	return out
}

func TestVirtualServiceProblems(t *testing.T) {
	tests := []struct {
		name       string
		docs       []string
		wantRoutes []string
		wantErrors []string
	}{
		{
			name: "two VirtualServices for one host: the first by namespace/name wins",
			docs: []string{reviewsDoc,
				"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]",
				"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  http:\n  - route: [{destination: {host: reviews}}]",
			},
			wantRoutes: []string{"VirtualService default/a spec.http[0] -> outbound|9080||reviews.default.svc.cluster.local"},
			wantErrors: []string{
				"mesh.yaml:18: VirtualService default/b: spec.hosts[0]: reviews.default.svc.cluster.local port 9080 already has routes from VirtualService default/a; this host is skipped",
				"mesh.yaml:18: VirtualService default/b: spec.hosts[0]: reviews.default.svc.cluster.local port 9081 already has routes from VirtualService default/a; this host is skipped",
			},
		},
		{
			name: "bound to gateways only: not for sidecars",
			docs: []string{reviewsDoc,
				"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [reviews]\n  gateways: [edge]\n  http:\n  - route: [{destination: {host: reviews, subset: nope}}]",
			},
		},
		{
			name: "unknown hosts, wildcards, subsets and ports are reported; a route left with nothing answers 503",
			docs: []string{reviewsDoc,
				"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [reviews, '*.example.com', nope]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n    - destination: {host: elsewhere}\n      weight: 50\n    - destination: {host: reviews, port: {number: 1}}\n      weight: 50",
			},
			wantRoutes: []string{"VirtualService default/a spec.http[0] -> direct"},
			wantErrors: []string{
				`mesh.yaml:10: VirtualService default/a: spec.http[0].route[0].destination.subset: no DestinationRule defines subset "v1" of reviews.default.svc.cluster.local; the destination is skipped`,
				`mesh.yaml:10: VirtualService default/a: spec.http[0].route[1].destination.host: no service "elsewhere" seen from namespace "default"; the destination is skipped`,
				`mesh.yaml:10: VirtualService default/a: spec.http[0].route[2].destination.port: service reviews.default.svc.cluster.local has no port 1; the destination is skipped`,
				`mesh.yaml:10: VirtualService default/a: spec.http[0].route: no destination can be reached; the route answers 503`,
				`mesh.yaml:10: VirtualService default/a: spec.hosts[1]: wildcard host "*.example.com" is not supported: name the services; the host is skipped`,
				`mesh.yaml:10: VirtualService default/a: spec.hosts[2]: no service "nope" seen from namespace "default"; the host is skipped`,
			},
		},
		{
			name: "a destination without a port: the request's port, else the only one",
			docs: []string{reviewsDoc,
				"apiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: ratings}\n  ports: [{name: http, port: 80}]",
				"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [reviews]\n  http:\n  - match: [{uri: {prefix: /ratings}}]\n    route: [{destination: {host: ratings}}]\n  - route: [{destination: {host: reviews}}]",
			},
			wantRoutes: []string{
				"VirtualService default/a spec.http[0].match[0] -> outbound|80||ratings.default.svc.cluster.local",
				"VirtualService default/a spec.http[1] -> outbound|9080||reviews.default.svc.cluster.local",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Build(parse(t, tt.docs...), nil)
			got := summaryRoutes(m, "reviews.default.svc.cluster.local", 9080, &Proxy{Namespace: "default"})
			if diff := cmp.Diff(tt.wantRoutes, got); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErrors, errorStrings(m)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoutesFor(t *testing.T) {
	docs := []string{
		reviewsDoc,
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n" +
			"  - match: [{sourceLabels: {app: tester}}]\n    route: [{destination: {host: reviews}}]\n" +
			"  - match: [{sourceNamespace: qa}]\n    route: [{destination: {host: reviews}}]\n" +
			"  - match: [{port: 9081}]\n    route: [{destination: {host: reviews}}]\n",
	}
	m := Build(parse(t, docs...), nil)
	tests := []struct {
		name  string
		proxy Proxy
		port  uint32
		want  []string
	}{
		{name: "labels match", proxy: Proxy{Namespace: "default", Labels: map[string]string{"app": "tester", "v": "1"}}, port: 9080,
			want: []string{"VirtualService default/r spec.http[0].match[0] -> outbound|9080||reviews.default.svc.cluster.local"}},
		{name: "namespace matches", proxy: Proxy{Namespace: "qa"}, port: 9080,
			want: []string{"VirtualService default/r spec.http[1].match[0] -> outbound|9080||reviews.default.svc.cluster.local"}},
		{name: "nothing applies: the default route", proxy: Proxy{Namespace: "default"}, port: 9080},
		{name: "port match", proxy: Proxy{Namespace: "default"}, port: 9081,
			want: []string{"VirtualService default/r spec.http[2].match[0] -> outbound|9081||reviews.default.svc.cluster.local"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summaryRoutes(m, "reviews.default.svc.cluster.local", tt.port, &tt.proxy)); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDestinationRuleMerge(t *testing.T) {
	docs := []string{reviewsDoc, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 7}}
    portLevelSettings:
    - port: {number: 9081}
      loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool: {http: {maxRetries: 2}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        loadBalancer: {simple: ROUND_ROBIN}`}
	m := Build(parse(t, docs...), []registry.Instance{
		instance("r1.default", "", map[string]string{"app": "reviews", "version": "v1"}, port("http", 9080, "HTTP", "127.0.0.1:1")),
		instance("r2.default", "", map[string]string{"app": "reviews", "version": "v2"}, port("http", 9080, "HTTP", "127.0.0.1:2")),
	})
	type summary struct {
		LB             LBPolicy
		MaxConnections uint32
		MaxRetries     uint32
		Endpoints      int
	}
	sum := func(p *TrafficPolicy, eps []Endpoint) summary {
		s := summary{Endpoints: len(eps)}
		if p.LoadBalancer != nil {
			s.LB = p.LoadBalancer.Policy
		}
		if p.ConnectionPool != nil {
			s.MaxConnections, s.MaxRetries = p.ConnectionPool.MaxConnections, p.ConnectionPool.MaxRetries
		}
		return s
	}
	svc := m.Service("reviews.default.svc.cluster.local")
	tests := []struct {
		name string
		port uint32
		sub  string
		want summary
	}{
		{name: "host level", port: 9080, want: summary{LB: LBRandom, MaxConnections: 7, Endpoints: 2}},
		{name: "port level replaces the load balancer only", port: 9081, want: summary{LB: LBLeastRequest, MaxConnections: 7}},
		{name: "subset replaces the connection pool whole", port: 9080, sub: "v1", want: summary{LB: LBRandom, MaxRetries: 2, Endpoints: 1}},
		{name: "subset port level", port: 9080, sub: "v2", want: summary{LB: LBRoundRobin, MaxConnections: 7, Endpoints: 1}},
		{name: "subset port level, other port", port: 9081, sub: "v2", want: summary{LB: LBLeastRequest, MaxConnections: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := m.Cluster(ClusterRef{Service: svc.FQDN, Port: tt.port, Subset: tt.sub})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, sum(info.Policy, info.Endpoints)); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGatewayPrecedence(t *testing.T) {
	docs := []string{reviewsDoc, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: reviews, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x, value: "1"}]}]
    backendRefs: [{name: reviews, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /api/v2}}]
    backendRefs: [{name: reviews, port: 9080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - matches: [{path: {type: Exact, value: /api}}]
    backendRefs: [{name: reviews, port: 9081}]
  - matches: [{path: {type: RegularExpression, value: "/x.*"}}]
    backendRefs: [{name: nope, port: 1}]`}
	m := Build(parse(t, docs...), nil)
	want := []string{
		"HTTPRoute default/b spec.rules[0].matches[0] -> outbound|9081||reviews.default.svc.cluster.local",
		"HTTPRoute default/b spec.rules[1].matches[0] -> direct",
		"HTTPRoute default/a spec.rules[2].matches[0] -> outbound|9080||reviews.default.svc.cluster.local",
		"HTTPRoute default/a spec.rules[1].matches[0] -> outbound|9080||reviews.default.svc.cluster.local",
		"HTTPRoute default/a spec.rules[0].matches[0] -> outbound|9080||reviews.default.svc.cluster.local",
	}
	if diff := cmp.Diff(want, summaryRoutes(m, "reviews.default.svc.cluster.local", 9080, &Proxy{Namespace: "default"})); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	wantErrors := []string{"mesh.yaml:23: HTTPRoute default/b: spec.rules[1].backendRefs[0].name: no Service default/nope; the backend is skipped"}
	if diff := cmp.Diff(wantErrors, errorStrings(m)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

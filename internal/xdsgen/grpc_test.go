package xdsgen

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
)

// TestGRPCGolden is TestGolden for proxyless gRPC applications:
// testdata/proxyless/<case> (outside the sidecar's contract test, which builds the
// goldens directly under testdata/). Nodes whose metadata says proxyless get
// GenerateGRPC; the others (sidecars that serve endpoints) are not written.
func TestGRPCGolden(t *testing.T) {
	forGoldenCases(t, "testdata/proxyless/*/mesh.yaml", func(t *testing.T, dir string, mesh *model.Mesh, instances []registry.Instance) {
		for _, inst := range instances {
			if inst.Metadata.Proxyless == "" {
				continue
			}
			checkGRPCReferences(t, compareGenerated(t, dir, mesh, inst, GenerateGRPC))
		}
	})
}

// checkGRPCReferences checks what go-control-plane's snapshot check cannot see for
// API listeners: every RDS name has its route configuration, every cluster a route
// names exists, and every EDS cluster has its endpoints.
func checkGRPCReferences(t *testing.T, res *Resources) {
	t.Helper()
	routes, clusters, endpoints := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, r := range res.Routes {
		routes[r.Name] = true
	}
	for _, c := range res.Clusters {
		clusters[c.Name] = true
	}
	for _, e := range res.Endpoints {
		endpoints[e.ClusterName] = true
	}
	for _, l := range res.Listeners {
		if l.GetApiListener() == nil {
			continue
		}
		m := &hcmv3.HttpConnectionManager{}
		if err := l.GetApiListener().GetApiListener().UnmarshalTo(m); err != nil {
			t.Fatalf("listener %s: %v", l.Name, err)
		}
		if name := m.GetRds().GetRouteConfigName(); !routes[name] {
			t.Errorf("listener %s: route configuration %q is not sent", l.Name, name)
		}
	}
	for _, rc := range res.Routes {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				for _, name := range routeClusters(r) {
					if !clusters[name] {
						t.Errorf("route configuration %s: cluster %q is not sent", rc.Name, name)
					}
				}
			}
		}
	}
	for _, c := range res.Clusters {
		if c.GetType().String() == "EDS" && !endpoints[c.Name] {
			t.Errorf("cluster %s: its endpoints are not sent", c.Name)
		}
	}
}

func routeClusters(r *routev3.Route) []string {
	a := r.GetRoute()
	if a == nil {
		return nil
	}
	if c := a.GetCluster(); c != "" {
		return []string{c}
	}
	var out []string
	for _, cw := range a.GetWeightedClusters().GetClusters() {
		out = append(out, cw.Name)
	}
	return out
}

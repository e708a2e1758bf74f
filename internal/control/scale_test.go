package control

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/xdsserver"
)

// scaleMesh is a mesh of services dealt over namespaces (as bench/xdsload writes
// it), with a Sidecar per namespace seeing itself and ns-00 when scoped, and one
// registered proxy per service and then round again until proxies.
func scaleMesh(tb testing.TB, services, namespaces, proxies int, scoped bool) (*config.Set, []registry.Instance) {
	tb.Helper()
	var b strings.Builder
	for i := range services {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%04d, namespace: ns-%02d}\nspec:\n  selector: {app: svc-%04d}\n  ports: [{name: http, port: 8080}]\n",
			i, i%namespaces, i)
	}
	if scoped {
		for n := range namespaces {
			fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: ns-%02d}\nspec:\n  egress:\n  - hosts: [\"./*\", \"ns-00/*\"]\n", n)
		}
	}
	set, err := config.Parse("mesh.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	var insts []registry.Instance
	for id := range proxies {
		svc := id % services
		ns := fmt.Sprintf("ns-%02d", svc%namespaces)
		host := fmt.Sprintf("127.10.%d.%d", id/250, id%250+1)
		insts = append(insts, registry.Instance{NodeID: fmt.Sprintf("sim-%05d.%s", id, ns), Metadata: bootstrap.Metadata{
			Workload: fmt.Sprintf("sim-%05d", id), Namespace: ns, ServiceAccount: "default",
			Labels:   map[string]string{"app": fmt.Sprintf("svc-%04d", svc)},
			Ports:    []bootstrap.Port{{Name: "http", Port: 8080, Protocol: "HTTP", Target: "127.0.0.1:9", Inbound: host + ":15006"}},
			Outbound: host + ":15001",
		}})
	}
	return set, insts
}

// BenchmarkTranslateScale is one translation of a mesh of 1,000 services in 50
// namespaces with 1,000 registered proxies: the model, every proxy's resources and
// a push to an xDS server without streams, where a second push with one more
// endpoint sets new snapshots. With Sidecars (scoped) and without.
func BenchmarkTranslateScale(b *testing.B) {
	for _, scoped := range []bool{true, false} {
		b.Run(fmt.Sprintf("scoped=%t", scoped), func(b *testing.B) {
			set, insts := scaleMesh(b, 1000, 50, 1000, scoped)
			srv, err := xdsserver.New(xdsserver.Config{Registry: registry.New(), Metrics: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var own ownCache
			for i := range b.N {
				// Alternate the last proxy's presence: every push changes one endpoint.
				n := len(insts) - i%2
				mesh := model.Build(set, insts[:n])
				gen := newGeneration(mesh, nil, &own)
				resources := make(map[string]xdsserver.Proxy, n)
				for _, inst := range insts[:n] {
					res, err := gen.proxy(inst, model.NewProxy(inst))
					if err != nil {
						b.Fatal(err)
					}
					resources[inst.NodeID] = res
				}
				if _, err := srv.PushProxies(context.Background(), resources); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(gen.scoped)), "scopes")
			}
		})
	}
}

package xdsgen

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
)

// TestGenerateErrors checks that what cannot be generated is reported, and that the
// rest is still generated.
func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name          string
		proxy         model.Proxy
		wantErrors    []string
		wantListeners []string
	}{
		{
			name:       "bad outbound address",
			proxy:      model.Proxy{ID: "p", Namespace: "default", Outbound: "127.0.0.1"},
			wantErrors: []string{`proxy p: outbound listener: address "127.0.0.1": address 127.0.0.1: missing port in address`},
		},
		{
			name: "inbound port without an inbound address or with a bad target",
			proxy: model.Proxy{ID: "p", Namespace: "default", Inbound: []model.InboundPort{
				{Port: 80, Protocol: "HTTP", Target: "127.0.0.1:8080"},
				{Port: 81, Protocol: "HTTP", Target: "127.0.0.1:0", Inbound: "127.0.0.1:15001"},
				{Port: 82, Protocol: "TCP", Target: "127.0.0.1:8082", Inbound: "127.0.0.1:15002"},
			}},
			wantErrors: []string{
				"proxy p: inbound port 80: the metadata gives no inbound address; no listener",
				`proxy p: inbound port 81: target: address "127.0.0.1:0": port must be 1..65535`,
			},
			wantListeners: []string{"inbound|82"},
		},
		{
			name: "upstream with a bad bind",
			proxy: model.Proxy{ID: "p", Namespace: "default", Upstreams: []bootstrap.Upstream{
				{Service: "db", Port: 5432, Bind: ":19000"},
			}},
			wantErrors: []string{`proxy p: upstream db:5432: bind: address ":19000": host is empty; skipped`},
		},
	}
	mesh := model.Build(nil, []registry.Instance{{NodeID: "db.default", Metadata: bootstrap.Metadata{
		Workload: "db", Namespace: "default", Service: "db",
		Ports: []bootstrap.Port{{Port: 5432, Protocol: "TCP", Target: "127.0.0.1:5432", Inbound: "127.0.0.1:15432"}},
	}}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Generate(mesh, &tt.proxy)
			var gotErrors []string
			if err != nil {
				gotErrors = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.wantErrors, gotErrors); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			var gotListeners []string
			for _, l := range res.Listeners {
				gotListeners = append(gotListeners, l.Name)
			}
			if diff := cmp.Diff(tt.wantListeners, gotListeners); diff != "" {
				t.Errorf("listeners (-want +got):\n%s", diff)
			}
		})
	}
}

package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouteStatuses(t *testing.T) {
	tcpDoc := `apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 5432}]`
	route := func(name, parent, backend string) string {
		return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ` + name + `}
spec:
  parentRefs: [` + parent + `]
  rules:
  - backendRefs: [` + backend + `]`
	}
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"accepted and resolved", route("r", `{group: "", kind: Service, name: reviews, port: 9080}`, `{name: reviews, port: 9081}`),
			[]string{"reviews: Accepted=true/Accepted ResolvedRefs=true/ResolvedRefs"}},
		{"missing backend", route("r", `{group: "", kind: Service, name: reviews}`, `{name: nope, port: 1}`),
			[]string{"reviews: Accepted=true/Accepted ResolvedRefs=false/BackendNotFound"}},
		{"missing backend port", route("r", `{group: "", kind: Service, name: reviews}`, `{name: reviews, port: 1}`),
			[]string{"reviews: Accepted=true/Accepted ResolvedRefs=false/BackendNotFound"}},
		{"unsupported backend kind", route("r", `{group: "", kind: Service, name: reviews}`, `{group: example.com, kind: Bucket, name: b}`),
			[]string{"reviews: Accepted=true/Accepted ResolvedRefs=false/InvalidKind"}},
		{"missing parent", route("r", `{group: "", kind: Service, name: nope}`, `{name: reviews, port: 9080}`),
			[]string{"nope: Accepted=false/NoMatchingParent ResolvedRefs=true/ResolvedRefs"}},
		{"missing parent port", route("r", `{group: "", kind: Service, name: reviews, port: 1}`, `{name: reviews, port: 9080}`),
			[]string{"reviews: Accepted=false/NoMatchingParent ResolvedRefs=true/ResolvedRefs"}},
		{"TCP parent port", route("r", `{group: "", kind: Service, name: db}`, `{name: reviews, port: 9080}`),
			[]string{"db: Accepted=false/UnsupportedValue ResolvedRefs=true/ResolvedRefs"}},
		{"Gateway parent left out", route("r", `{kind: Gateway, group: gateway.networking.k8s.io, name: gw}`, `{name: reviews, port: 9080}`),
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parse(t, reviewsDoc, tcpDoc, tt.doc)
			m := Build(set, nil)
			var got []string
			for _, s := range RouteStatuses(m, set.HTTPRoutes, set.GRPCRoutes) {
				got = append(got, string(s.Parent.Name)+": Accepted="+fmtCond(s.Accepted)+" ResolvedRefs="+fmtCond(s.ResolvedRefs))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func fmtCond(c RouteCondition) string {
	if c.OK {
		return "true/" + c.Reason
	}
	return "false/" + c.Reason
}

package config

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// minimalSpecs is a small valid spec of each Istio and Gateway API kind.
var minimalSpecs = map[string]string{
	"VirtualService":        "{hosts: [a], http: [{route: [{destination: {host: a}}]}]}",
	"DestinationRule":       "{host: a, subsets: [{name: v1, labels: {c: x, a: y, b: z}}]}",
	"ServiceEntry":          "{hosts: [a.example]}",
	"WorkloadEntry":         "{address: 127.0.0.1}",
	"Sidecar":               "{}",
	"PeerAuthentication":    "{}",
	"AuthorizationPolicy":   "{}",
	"RequestAuthentication": "{}",
	"HTTPRoute":             "{parentRefs: [{name: a}]}",
	"GRPCRoute":             "{parentRefs: [{name: a}]}",
	"RateLimitPolicy":       "{targetRefs: [{group: '', kind: Service, name: a}], rules: [{limit: {requests: 1, per: 1s}}]}",
}

func TestAPIVersionSpellings(t *testing.T) {
	var want []string
	for _, v := range []string{"v1", "v1beta1", "v1alpha3"} {
		for _, k := range []string{"DestinationRule", "ServiceEntry", "Sidecar", "VirtualService", "WorkloadEntry"} {
			want = append(want, "networking.istio.io/"+v+" "+k)
		}
	}
	for _, v := range []string{"v1", "v1beta1"} {
		for _, k := range []string{"AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"} {
			want = append(want, "security.istio.io/"+v+" "+k)
		}
	}
	want = append(want, "gateway.networking.k8s.io/v1 GRPCRoute", "gateway.networking.k8s.io/v1 HTTPRoute",
		"gateway.networking.k8s.io/v1beta1 HTTPRoute", "trellis.dev/v1alpha1 RateLimitPolicy",
		"trellis.dev/v1alpha1 Workload", "v1 Service")
	var got []string
	for k := range kinds {
		got = append(got, k.apiVersion+" "+k.kind)
	}
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("accepted kinds (-want +got):\n%s", diff)
	}

	for k := range kinds {
		spec, ok := minimalSpecs[k.kind]
		if !ok {
			continue
		}
		t.Run(k.apiVersion+" "+k.kind, func(t *testing.T) {
			src := lines("apiVersion: "+k.apiVersion, "kind: "+k.kind, "metadata: {name: a}", "spec: "+spec)
			set := parseOne(t, src)
			want := []ObjectRef{{Kind: k.kind, Namespace: "default", Name: "a", Pos: Position{File: "mesh.yaml", Line: 1}}}
			if diff := cmp.Diff(want, set.Objects()); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			data, err := json.Marshal(set)
			if err != nil {
				t.Fatalf("encoding the set: %v", err)
			}
			if !strings.Contains(string(data), `"apiVersion":"`+k.apiVersion+`"`) {
				t.Errorf("the object does not keep its apiVersion: %s", data)
			}
		})
	}
}

// everyKind is one object of every kind in one file.
func everyKind(namespace string) string {
	docs := []string{lines(
		"apiVersion: trellis.dev/v1alpha1", "kind: Workload", "metadata: {name: a, namespace: "+namespace+"}",
		"spec: {ports: [{port: 80}]}",
	), lines(
		"apiVersion: v1", "kind: Service", "metadata: {name: a, namespace: "+namespace+"}",
		"spec: {selector: {app: a}, ports: [{port: 80}]}",
	)}
	for _, k := range slices.Sorted(maps.Keys(minimalSpecs)) {
		group := map[string]string{
			"PeerAuthentication": "security.istio.io/v1", "AuthorizationPolicy": "security.istio.io/v1",
			"RequestAuthentication": "security.istio.io/v1", "HTTPRoute": "gateway.networking.k8s.io/v1",
			"GRPCRoute": "gateway.networking.k8s.io/v1", "RateLimitPolicy": "trellis.dev/v1alpha1",
		}[k]
		if group == "" {
			group = "networking.istio.io/v1"
		}
		docs = append(docs, lines("apiVersion: "+group, "kind: "+k, "metadata: {name: a, namespace: "+namespace+"}", "spec: "+minimalSpecs[k]))
	}
	return strings.Join(docs, "---\n")
}

func TestSetHelpersCoverEveryKind(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", everyKind("prod"))
	b := write("b.yaml", everyKind("dev"))
	c := write("c.yaml", everyKind("prod"))

	set, err := LoadFiles([]string{a, b})
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	refs := set.Objects()
	if len(refs) != 2*(2+len(minimalSpecs)) {
		t.Fatalf("got %d objects, want %d: %v", len(refs), 2*(2+len(minimalSpecs)), refs)
	}
	for i := 0; i < len(refs); i += 2 { // kind by kind, dev before prod
		if refs[i].Kind != refs[i+1].Kind || refs[i].Namespace != "dev" || refs[i+1].Namespace != "prod" {
			t.Errorf("objects %d and %d are %v and %v, want the same kind in dev then prod", i, i+1, refs[i], refs[i+1])
		}
	}

	// Every object of c.yaml is defined in a.yaml too.
	_, err = LoadFiles([]string{a, c})
	errs := errorStrings(t, err)
	if len(errs) != 2+len(minimalSpecs) {
		t.Fatalf("got %d errors, want one per kind:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	for _, e := range errs {
		if !strings.HasPrefix(e, c+":") || !strings.Contains(e, "defined twice: here and at "+a+":") {
			t.Errorf("unexpected error %q", e)
		}
	}

	sa, _ := ParseFile(a)
	sb, _ := ParseFile(b)
	merged := sb.Merge(sa)
	if diff := cmp.Diff(refs, merged.Objects()); diff != "" {
		t.Errorf("Merge objects (-LoadFiles +Merge):\n%s", diff)
	}

	// The store compares sets by their JSON encoding: it must be stable.
	first, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("encoding: %v", err)
	}
	for range 5 {
		again, _ := LoadFiles([]string{b, a})
		next, _ := json.Marshal(again)
		if !bytes.Equal(first, next) {
			t.Fatalf("encoding differs between equal sets")
		}
	}
}

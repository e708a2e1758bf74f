package inject

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml")

// TestManifest injects testdata/*.in.yaml and compares with *.golden.yaml.
func TestManifest(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.in.yaml (%v)", err)
	}
	for _, in := range inputs {
		name := filepath.Base(in[:len(in)-len(".in.yaml")])
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Manifest(data, Config{Image: "example.com/trellis:test"})
			if err != nil {
				t.Fatalf("Manifest: %v", err)
			}
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Manifest(%s) (-want +got):\n%s", in, diff)
			}
			again, err := Manifest(got, Config{Image: "example.com/trellis:test"})
			if err != nil {
				t.Fatalf("Manifest of its own output: %v", err)
			}
			if diff := cmp.Diff(string(got), string(again)); diff != "" {
				t.Errorf("injecting twice differs from once (-once +twice):\n%s", diff)
			}
		})
	}
}

func TestManifestErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "bad YAML", in: "kind: Pod\n  bad: [", want: "document 1: parsing YAML"},
		{name: "deployment without template", in: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n", want: "document 1: Deployment x has no spec.template"},
		{name: "bad annotation", in: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {traffic.sidecar.trellis.dev/excludeOutboundPorts: x}\nspec:\n  containers: [{name: a, image: a}]\n", want: "excludeOutboundPorts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Manifest([]byte(tt.in), Config{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"trellis.dev/trellis/internal/config"
)

func TestExampleIsEmbeddedMesh(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "demo", "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, Mesh) {
		t.Errorf("examples/demo/mesh.yaml differs from internal/demo/demo.yaml; copy demo.yaml over it")
	}
}

func TestMeshParses(t *testing.T) {
	set, err := config.Parse("demo.yaml", Mesh)
	if err != nil {
		t.Fatalf("demo mesh does not parse: %v", err)
	}
	var names []string
	for _, w := range set.Workloads {
		names = append(names, w.Name)
		if len(w.Spec.Command) == 0 || w.Spec.Command[0] != "$(TRELLIS_BINARY)" {
			t.Errorf("workload %s: command %q does not run $(TRELLIS_BINARY)", w.Name, w.Spec.Command)
		}
	}
	want := []string{"details", "frontend", "loadgen", "ratings", "reviews-v1", "reviews-v2"}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("workloads = %v, want %v", names, want)
	}
	if len(set.Services) != 1 || set.Services[0].Name != "reviews-v2" {
		t.Errorf("services = %v, want reviews-v2", set.Services)
	}
}

package xdsgen

import (
	"path/filepath"
	"testing"

	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/model"
)

// TestGoldensCoverEveryField checks that the golden cases, together, set every field
// of the traffic APIs that Trellis implements. The four places of a DestinationRule
// traffic policy count as one (model.FoldPolicyField); model tests cover the merge.
func TestGoldensCoverEveryField(t *testing.T) {
	files, err := filepath.Glob("testdata/*/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]map[string]bool{}
	for _, f := range files {
		cfg, err := config.ParseFile(f)
		if err != nil {
			t.Fatalf("parsing %s: %v", f, err)
		}
		for kind, fields := range model.SetFields(cfg) {
			if set[kind] == nil {
				set[kind] = map[string]bool{}
			}
			for f := range fields {
				set[kind][model.FoldPolicyField(kind, f)] = true
			}
		}
	}
	for kind, table := range model.FieldTables() {
		for _, f := range table.Supported {
			if !set[kind][model.FoldPolicyField(kind, f)] {
				t.Errorf("%s %s: no golden case sets it", kind, f)
			}
		}
	}
}

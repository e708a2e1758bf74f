package xdsgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGolden translates testdata/<case>/mesh.yaml, with the sidecars of
// testdata/<case>/proxies.yaml registered, and compares the model with mesh.json and
// each proxy's resources (and generation errors) with <node-id>.json.
func TestGolden(t *testing.T) {
	forGoldenCases(t, "testdata/*/mesh.yaml", func(t *testing.T, dir string, mesh *model.Mesh, instances []registry.Instance) {
		compareGolden(t, filepath.Join(dir, "mesh.json"), mesh)
		for _, inst := range instances {
			compareGenerated(t, dir, mesh, inst, Generate)
		}
	})
}

// compareGenerated compares an instance's resources (and generation errors) with
// <dir>/<node-id>.json, checks that generating again gives the same, and returns them.
func compareGenerated(t *testing.T, dir string, mesh *model.Mesh, inst registry.Instance,
	generate func(*model.Mesh, *model.Proxy) (*Resources, error)) *Resources {
	t.Helper()
	res, err := generate(mesh, model.NewProxy(inst))
	got := goldenProxy{Resources: res}
	if err != nil {
		got.Errors = strings.Split(err.Error(), "\n")
	}
	compareGolden(t, filepath.Join(dir, inst.NodeID+".json"), got)
	again, _ := generate(mesh, model.NewProxy(inst))
	if a, b := mustJSON(t, res), mustJSON(t, again); !bytes.Equal(a, b) {
		t.Errorf("%s: generating twice gave different resources", inst.NodeID)
	}
	return res
}

// forGoldenCases runs f, as a subtest, on each case whose mesh.yaml matches pattern:
// its model built from the mesh, the sidecars of proxies.yaml registered and the
// control-plane options of options.yaml (optional).
func forGoldenCases(t *testing.T, pattern string, f func(t *testing.T, dir string, mesh *model.Mesh, instances []registry.Instance)) {
	t.Helper()
	dirs, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatalf("no golden cases match %s", pattern)
	}
	for _, meshFile := range dirs {
		dir := filepath.Dir(meshFile)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			set, err := config.ParseFile(meshFile)
			if err != nil {
				t.Fatalf("parsing mesh: %v", err)
			}
			instances := loadProxies(t, filepath.Join(dir, "proxies.yaml"))
			f(t, dir, model.Build(set, instances, loadOptions(t, filepath.Join(dir, "options.yaml"))...), instances)
		})
	}
}

type goldenProxy struct {
	Errors    []string   `json:"errors,omitempty"`
	Resources *Resources `json:"resources"`
}

func loadProxies(t *testing.T, path string) []registry.Instance {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []bootstrap.Node
	if err := yaml.UnmarshalStrict(data, &nodes); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	var out []registry.Instance
	for _, n := range nodes {
		out = append(out, registry.Instance{NodeID: n.ID, Metadata: n.Metadata})
	}
	return out
}

// goldenOptions are a case's control-plane options (options.yaml, optional).
type goldenOptions struct {
	// ExtAuthz are --ext-authz flags.
	ExtAuthz []string `json:"extAuthz"`
	// PathNormalization is --path-normalization.
	PathNormalization string `json:"pathNormalization"`
	// JWKS are the key sets fetched from jwksUri, by URI.
	JWKS map[string]string `json:"jwks"`
	// RateLimitService is the address of the rate-limit service.
	RateLimitService string `json:"rateLimitService"`
}

func loadOptions(t *testing.T, path string) []model.Option {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var o goldenOptions
	if err := yaml.UnmarshalStrict(data, &o); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	var opts []model.Option
	for _, f := range o.ExtAuthz {
		p, err := model.ParseExtAuthz(f)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, model.WithExtAuthz(p))
	}
	if o.PathNormalization != "" {
		pn, err := model.ParsePathNormalization(o.PathNormalization)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, model.WithPathNormalization(pn))
	}
	if o.JWKS != nil {
		opts = append(opts, model.WithJWKS(func(uri string) (string, bool) {
			doc, ok := o.JWKS[uri]
			return doc, ok
		}))
	}
	if o.RateLimitService != "" {
		opts = append(opts, model.WithRateLimitService(model.RateLimitService{Address: o.RateLimitService}))
	}
	return opts
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func compareGolden(t *testing.T, path string, v any) {
	t.Helper()
	got := mustJSON(t, v)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

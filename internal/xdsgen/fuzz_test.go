package xdsgen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/jwks"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/registry"
)

// FuzzTranslate runs any mesh file, any registered sidecars (their node metadata, as
// YAML) and any control-plane options through the control plane's translation:
// config.Parse, model.Build and Generate for every sidecar. The file is either
// refused with errors that each name the file and say what is wrong, or translated;
// everything generated must pass the Envoy protos' own validation (ValidateAll) and
// be accepted by the sidecar (runtime.Validate, then runtime.Build), since the
// control plane must never send what its sidecars NACK.
//
// This test is the one place where a control-plane package and the sidecar's
// runtime meet in one binary: the contract, checked from both sides at once.
//
// The seeds are the golden cases (testdata/*/mesh.yaml, proxies.yaml, options.yaml)
// and the committed corpus in testdata/fuzz/FuzzTranslate.
func FuzzTranslate(f *testing.F) {
	meshes, _ := filepath.Glob("testdata/*/mesh.yaml")
	for _, m := range meshes {
		dir := filepath.Dir(m)
		f.Add(readOr(m), readOr(filepath.Join(dir, "proxies.yaml")), readOr(filepath.Join(dir, "options.yaml")))
	}
	f.Fuzz(func(t *testing.T, meshYAML, proxiesYAML, optionsYAML string) {
		const file = "mesh.yaml"
		set, err := config.Parse(file, []byte(meshYAML))
		if err != nil {
			checkConfigErrors(t, file, err)
			return
		}
		instances, ok := fuzzProxies(proxiesYAML)
		if !ok {
			return
		}
		opts, ok := fuzzOptions(optionsYAML)
		if !ok {
			return
		}
		mesh := model.Build(set, instances, opts...)
		for _, list := range [][]*config.Error{mesh.ConfigErrors, mesh.Unsupported} {
			for _, e := range list {
				if e == nil || e.Msg == "" {
					t.Fatalf("model error without a message: %#v", e)
				}
			}
		}
		for _, inst := range instances {
			res, err := Generate(mesh, model.NewProxy(inst))
			if res == nil {
				t.Fatalf("%s: Generate returned no resources (error %v)", inst.NodeID, err)
			}
			if err != nil && !strings.Contains(err.Error(), "proxy "+inst.NodeID+": ") {
				t.Fatalf("%s: generation error does not name the proxy: %v", inst.NodeID, err)
			}
			checkResources(t, inst.NodeID, res)
		}
	})
}

// checkConfigErrors checks that a refused file got an ErrorList whose every entry
// names the file and says what is wrong.
func checkConfigErrors(t *testing.T, file string, err error) {
	t.Helper()
	var list config.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("parse error is not a config.ErrorList: %T %v", err, err)
	}
	for _, e := range list {
		if e.Pos.File != file || strings.TrimSpace(e.Msg) == "" {
			t.Fatalf("error does not say where or what: %#v", e)
		}
	}
}

// checkResources validates one proxy's resources as the Envoy protos and the sidecar
// do.
func checkResources(t *testing.T, node string, res *Resources) {
	t.Helper()
	rt := runtime.Resources{
		Listeners: byName(t, node, res.Listeners),
		Routes:    byName(t, node, res.Routes),
		Clusters:  byName(t, node, res.Clusters),
		Endpoints: byName(t, node, res.Endpoints),
		Secrets:   byName(t, node, res.Secrets),
	}
	if _, ok := rt.Secrets[names.RootCASecret]; !ok {
		rt.Secrets[names.RootCASecret] = &tlsv3.Secret{Name: names.RootCASecret} // the control plane adds it
	}
	for typeURL, msgs := range map[string]map[string]proto.Message{
		runtime.ListenerType: generic(rt.Listeners), runtime.RouteType: generic(rt.Routes),
		runtime.ClusterType: generic(rt.Clusters), runtime.EndpointType: generic(rt.Endpoints),
	} {
		if err := runtime.Validate(typeURL, msgs); err != nil {
			t.Fatalf("%s: the sidecar would NACK: %v\nresources: %s", node, err, dump(res))
		}
	}
	if _, err := runtime.Build(rt); err != nil {
		t.Fatalf("%s: the sidecar cannot build a table: %v\nresources: %s", node, err, dump(res))
	}
}

type validator interface {
	proto.Message
	ValidateAll() error
}

// byName keys resources by name, failing on an invalid or duplicate one.
func byName[T validator](t *testing.T, node string, list []T) map[string]T {
	t.Helper()
	out := make(map[string]T, len(list))
	for _, m := range list {
		if err := m.ValidateAll(); err != nil {
			t.Fatalf("%s: %T %q fails proto validation: %v", node, m, runtime.ResourceName(m), err)
		}
		name := runtime.ResourceName(m)
		if _, dup := out[name]; dup {
			t.Fatalf("%s: two %T named %q", node, m, name)
		}
		out[name] = m
	}
	return out
}

func generic[T proto.Message](m map[string]T) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func dump(res *Resources) string {
	b, err := yaml.Marshal(res)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// fuzzProxies decodes registered sidecars as proxies.yaml lists them; ok is false
// when the text is not such a list (the control plane decodes node metadata as
// strictly, and registers a sidecar whose metadata it cannot read as a plain client).
func fuzzProxies(text string) ([]registry.Instance, bool) {
	var nodes []bootstrap.Node
	if err := yaml.Unmarshal([]byte(text), &nodes); err != nil {
		return nil, false
	}
	seen := map[string]bool{}
	var out []registry.Instance
	for _, n := range nodes {
		if n.ID == "" || seen[n.ID] {
			continue // the xDS server refuses a stream without node.id; one entry per node
		}
		seen[n.ID] = true
		out = append(out, registry.Instance{NodeID: n.ID, Metadata: n.Metadata})
	}
	return out, true
}

// fuzzOptions decodes control-plane options as options.yaml writes them; ok is false
// when the text is not such a document or a flag's value would be refused at start.
func fuzzOptions(text string) ([]model.Option, bool) {
	var o goldenOptions
	if err := yaml.Unmarshal([]byte(text), &o); err != nil {
		return nil, false
	}
	var opts []model.Option
	for _, s := range o.ExtAuthz {
		p, err := model.ParseExtAuthz(s)
		if err != nil {
			return nil, false
		}
		opts = append(opts, model.WithExtAuthz(p))
	}
	if o.PathNormalization != "" {
		pn, err := model.ParsePathNormalization(o.PathNormalization)
		if err != nil {
			return nil, false
		}
		opts = append(opts, model.WithPathNormalization(pn))
	}
	if o.JWKS != nil {
		// The control plane's fetcher hands over only documents that pass jwks.Check.
		opts = append(opts, model.WithJWKS(func(uri string) (string, bool) {
			doc, ok := o.JWKS[uri]
			return doc, ok && jwks.Check([]byte(doc)) == nil
		}))
	}
	if o.RateLimitService != "" {
		// trellis control refuses a --ratelimit-addr that is not host:port.
		_, port, err := net.SplitHostPort(o.RateLimitService)
		if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || n == 0 {
			return nil, false
		}
		opts = append(opts, model.WithRateLimitService(model.RateLimitService{Address: o.RateLimitService}))
	}
	return opts, true
}

func readOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

var (
	_ validator = (*listenerv3.Listener)(nil)
	_ validator = (*routev3.RouteConfiguration)(nil)
	_ validator = (*clusterv3.Cluster)(nil)
	_ validator = (*endpointv3.ClusterLoadAssignment)(nil)
	_ validator = (*tlsv3.Secret)(nil)
)

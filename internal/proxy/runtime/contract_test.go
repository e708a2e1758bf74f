package runtime

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestControlPlaneGoldens checks the contract from the other side: every per-proxy
// output in the control plane's golden files (read as data; the sidecar imports no
// control-plane package) validates and builds into a complete table, transparent-mode
// outputs (use_original_dst, bind_to_port false, ORIGINAL_DST clusters) included.
func TestControlPlaneGoldens(t *testing.T) {
	for _, g := range loadGoldens(t) {
		t.Run(filepath.Base(filepath.Dir(g.name))+"/"+filepath.Base(g.name), func(t *testing.T) {
			res := g.res
			for typeURL, msgs := range map[string]map[string]proto.Message{
				ListenerType: generic(res.Listeners), RouteType: generic(res.Routes),
				ClusterType: generic(res.Clusters), EndpointType: generic(res.Endpoints),
			} {
				if err := Validate(typeURL, msgs); err != nil {
					t.Errorf("Validate: %v", err)
				}
			}
			if _, err := Build(res); err != nil {
				t.Errorf("Build: %v", err)
			}
			// go-control-plane's snapshot cache in ADS mode answers a SotW request for
			// named resources only if the snapshot holds no others: the sidecar asks for
			// exactly the names its listeners and clusters refer to.
			if diff := cmp.Diff(RouteNames(res.Listeners), slices.Sorted(maps.Keys(res.Routes)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("route configurations the sidecar subscribes (-want +got in snapshot):\n%s", diff)
			}
			if diff := cmp.Diff(EndpointNames(res.Clusters), slices.Sorted(maps.Keys(res.Endpoints)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("load assignments the sidecar subscribes (-want +got in snapshot):\n%s", diff)
			}
		})
	}
}

func decodeAll[T proto.Message](t testing.TB, raws []json.RawMessage) map[string]T {
	t.Helper()
	out := map[string]T{}
	for _, raw := range raws {
		var zero T
		m := zero.ProtoReflect().New().Interface().(T)
		if err := protojson.Unmarshal(raw, m); err != nil {
			t.Fatalf("decoding %T: %v", m, err)
		}
		out[ResourceName(m)] = m
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

package xdsserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/model"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/xdsgen"
	"trellis.dev/trellis/internal/xdsserver"
)

const meshYAML = `apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1}
spec:
  service: echo
  ports: [{name: http, port: 80, targetPort: 18081}]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v2}
spec:
  service: echo
  ports: [{name: http, port: 80, targetPort: 18082}]
`

var echoCluster = names.OutboundCluster(names.ServiceFQDN("echo", "default"), 80)

func echoNode(t *testing.T, workload, inbound string) *corev3.Node {
	t.Helper()
	n := bootstrap.Node{ID: workload + ".default", Cluster: "echo", Metadata: bootstrap.Metadata{
		Workload: workload, Namespace: "default", Service: "echo", Outbound: "127.0.0.1:1",
		Ports: []bootstrap.Port{{Name: "http", Port: 80, Protocol: "HTTP", Target: "127.0.0.1:2", Inbound: inbound}},
	}}
	p, err := n.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	reg     *registry.Registry
	metrics *prometheus.Registry
	logs    *syncBuffer
	conn    *grpc.ClientConn
}

// start runs a real xDS server on 127.0.0.1:0 and a loop that regenerates every
// registered proxy's resources when the registry changes, as the control component
// does. Both stop when the test ends.
func start(ctx context.Context, t *testing.T) *fixture {
	t.Helper()
	set, err := config.Parse("mesh.yaml", []byte(meshYAML))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{reg: registry.New(), metrics: prometheus.NewRegistry(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := xdsserver.New(xdsserver.Config{Registry: f.reg, Metrics: f.metrics, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx, lis); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	changes, unsubscribe := f.reg.Subscribe()
	go func() {
		defer wg.Done()
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changes:
			}
			instances := f.reg.Instances()
			mesh := model.Build(set, instances)
			proxies := map[string]*xdsgen.Resources{}
			for _, inst := range instances {
				res, err := xdsgen.Generate(mesh, model.NewProxy(inst))
				if err != nil {
					t.Errorf("generating %s: %v", inst.NodeID, err)
				}
				proxies[inst.NodeID] = res
			}
			if _, err := srv.Push(ctx, proxies); err != nil {
				t.Errorf("Push: %v", err)
			}
		}
	}()
	f.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.conn.Close() })
	return f
}

// endpointsOf lists the addresses of a cluster's assignment, sorted.
func endpointsOf(c adsClient, cluster string) []string {
	cla, ok := c.resources(resource.EndpointType)[cluster].(*endpointv3.ClusterLoadAssignment)
	if !ok {
		return nil
	}
	out := []string{}
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)))
		}
	}
	slices.Sort(out)
	return out
}

// await reads responses until cond holds; it fails the test if the stream ends
// (the stream's context carries the deadline). It returns the number of responses
// read, by type.
func await(t *testing.T, c adsClient, what string, cond func() bool) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for !cond() {
		typ, _, err := c.next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		seen[typ]++
	}
	return seen
}

func equal(c adsClient, cluster string, want ...string) func() bool {
	return func() bool { return cmp.Equal(endpointsOf(c, cluster), want) }
}

func TestServer(t *testing.T) {
	newClient := map[string]func(context.Context, *testing.T, *grpc.ClientConn, *corev3.Node) adsClient{
		"sotw": func(ctx context.Context, t *testing.T, c *grpc.ClientConn, n *corev3.Node) adsClient {
			return newSotW(ctx, t, c, n)
		},
		"delta": func(ctx context.Context, t *testing.T, c *grpc.ClientConn, n *corev3.Node) adsClient {
			return newDelta(ctx, t, c, n)
		},
	}
	tests := []struct {
		name          string
		first, second string
	}{
		{name: "SotW first, Delta second", first: "sotw", second: "delta"},
		{name: "Delta first, SotW second", first: "delta", second: "sotw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			f := start(ctx, t)

			// The first sidecar connects and receives its listeners, clusters and
			// endpoints: itself.
			a := newClient[tt.first](ctx, t, f.conn, echoNode(t, "echo-v1", "127.0.0.1:15201"))
			for _, typ := range []string{resource.ClusterType, resource.ListenerType} {
				if err := a.subscribe(typ); err != nil {
					t.Fatal(err)
				}
			}
			await(t, a, "clusters and listeners", func() bool {
				return len(a.resources(resource.ClusterType)) == 2 && len(a.resources(resource.ListenerType)) == 2
			})
			if diff := cmp.Diff([]string{"inbound|80", "outbound"}, sortedKeys(a.resources(resource.ListenerType))); diff != "" {
				t.Errorf("listeners (-want +got):\n%s", diff)
			}
			if err := a.subscribe(resource.EndpointType, echoCluster); err != nil {
				t.Fatal(err)
			}
			if err := a.subscribe(resource.RouteType, names.OutboundRoute); err != nil {
				t.Fatal(err)
			}
			await(t, a, "endpoints [echo-v1]", equal(a, echoCluster, "127.0.0.1:15201"))

			// A second sidecar registers: it is no endpoint until it acknowledges its
			// listeners; then the first is pushed the new endpoint, and nothing else
			// about the clusters.
			bctx, bcancel := context.WithCancel(ctx)
			b := newClient[tt.second](bctx, t, f.conn, echoNode(t, "echo-v2", "127.0.0.1:15202"))
			if err := b.subscribe(resource.ClusterType); err != nil {
				t.Fatal(err)
			}
			await(t, b, "the second proxy's clusters", func() bool { return len(b.resources(resource.ClusterType)) == 2 })
			if inst, ok := f.reg.Lookup("echo-v2.default"); !ok || !inst.Starting {
				t.Errorf("the second proxy before it acknowledged listeners: %+v (registered %v), want it starting", inst, ok)
			}
			if got := endpointsOf(a, echoCluster); !cmp.Equal(got, []string{"127.0.0.1:15201"}) {
				t.Errorf("endpoints before the second proxy acknowledged listeners: %v, want only the first", got)
			}
			if err := b.subscribe(resource.ListenerType); err != nil {
				t.Fatal(err)
			}
			await(t, b, "the second proxy's listeners", func() bool { return len(b.resources(resource.ListenerType)) == 2 })
			seen := await(t, a, "endpoints [echo-v1 echo-v2]", equal(a, echoCluster, "127.0.0.1:15201", "127.0.0.1:15202"))
			if seen[resource.ClusterType] != 0 || seen[resource.ListenerType] != 0 {
				t.Errorf("after an endpoint change the first proxy was sent %v; want endpoints only", seen)
			}
			if got := metricValue(t, f.metrics, "trellis_xds_connected_proxies", ""); got != 2 {
				t.Errorf("trellis_xds_connected_proxies = %v, want 2", got)
			}

			// The second proxy rejects its clusters: counted and logged.
			if err := b.nack(resource.ClusterType, "cluster outbound|80||echo: bad field"); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, "the NACK to be counted", func() bool {
				return strings.Contains(f.logs.String(), "NACK")
			})
			if got := metricValue(t, f.metrics, "trellis_xds_nacks_total", "Cluster"); got != 1 {
				t.Errorf("trellis_xds_nacks_total{type=Cluster} = %v, want 1", got)
			}
			for _, want := range []string{"node=echo-v2.default", "type=" + resource.ClusterType, "bad field", echoCluster} {
				if !strings.Contains(f.logs.String(), want) {
					t.Errorf("NACK log lacks %q:\n%s", want, f.logs.String())
				}
			}

			// The second stream closes: its endpoint is removed from the first.
			bcancel()
			await(t, a, "endpoints [echo-v1] again", equal(a, echoCluster, "127.0.0.1:15201"))
			if got := metricValue(t, f.metrics, "trellis_xds_pushes_total", "ClusterLoadAssignment"); got < 3 {
				t.Errorf("trellis_xds_pushes_total{type=ClusterLoadAssignment} = %v, want >= 3", got)
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// pollUntil polls cond every 10ms until it holds or the test's deadline of 10s.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue is the value of a counter or gauge, selected by its type label if
// typ is set; 0 if absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name, typ string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if typ != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == "type" && l.GetValue() == typ
			}) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestReconnectingSidecarIsAnEndpointAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := start(ctx, t)
	for _, tt := range []struct {
		workload string
		serving  bool
	}{{"echo-v1", false}, {"echo-v2", true}} {
		n := bootstrap.Node{ID: tt.workload + ".default", Cluster: "echo", Metadata: bootstrap.Metadata{
			Workload: tt.workload, Namespace: "default", Service: "echo", Outbound: "127.0.0.1:1", Serving: tt.serving,
			Ports: []bootstrap.Port{{Name: "http", Port: 80, Protocol: "HTTP", Target: "127.0.0.1:2", Inbound: "127.0.0.1:3"}}}}
		node, err := n.ToProto()
		if err != nil {
			t.Fatal(err)
		}
		c := newSotW(ctx, t, f.conn, node)
		if err := c.subscribe(resource.ClusterType); err != nil {
			t.Fatal(err)
		}
		await(t, c, "clusters", func() bool { return len(c.resources(resource.ClusterType)) > 0 })
		// Neither acknowledged listeners: only the one that says it serves is an
		// endpoint.
		if inst, ok := f.reg.Lookup(n.ID); !ok || inst.Starting == tt.serving {
			t.Errorf("%s (serving %v): registered %v, starting %v; want starting %v", n.ID, tt.serving, ok, inst.Starting, !tt.serving)
		}
	}
}

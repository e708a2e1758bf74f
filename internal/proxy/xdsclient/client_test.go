package xdsclient

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// handler keeps what it accepts, validating with the runtime's rules.
type handler struct {
	mu       sync.Mutex
	accepted map[string]Update
}

func (h *handler) Apply(u Update) error {
	msgs := map[string]proto.Message{}
	for n, r := range u.Resources {
		msgs[n] = r.Message
	}
	if err := runtime.Validate(u.TypeURL, msgs); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accepted[u.TypeURL] = u
	return nil
}

func (h *handler) Wants(typeURL string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch typeURL {
	case runtime.RouteType:
		ls := map[string]*listenerv3.Listener{}
		for n, r := range h.accepted[runtime.ListenerType].Resources {
			ls[n] = r.Message.(*listenerv3.Listener)
		}
		return runtime.RouteNames(ls)
	case runtime.EndpointType:
		cs := map[string]*clusterv3.Cluster{}
		for n, r := range h.accepted[runtime.ClusterType].Resources {
			cs[n] = r.Message.(*clusterv3.Cluster)
		}
		return runtime.EndpointNames(cs)
	}
	return nil
}

// names returns the accepted resource names of each type, with versions.
func (h *handler) names() map[string][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]string{}
	for tu, u := range h.accepted {
		for n := range u.Resources {
			out[tu] = append(out[tu], n)
		}
		slices.Sort(out[tu])
	}
	return out
}

func startClient(t *testing.T, server string, delta bool) (*Client, *handler) {
	t.Helper()
	return startClientWith(t, server, delta, nil)
}

// startClientWith is startClient with the configuration changed by tweak, if set.
func startClientWith(t *testing.T, server string, delta bool, tweak func(*Config, *handler)) (*Client, *handler) {
	t.Helper()
	h := &handler{accepted: map[string]Update{}}
	cfg := Config{
		Server:     server,
		Node:       &corev3.Node{Id: "n1"},
		Delta:      delta,
		Handler:    h,
		Logger:     slog.New(slog.DiscardHandler),
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg, h)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("client did not stop")
		}
	})
	return c, h
}

func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func resources(v int) []proto.Message {
	rs := []proto.Message{
		xdstest.HTTPListener("outbound", "127.0.0.1:15001", "outbound"),
		xdstest.RouteConfig("outbound", xdstest.VirtualHost("a", []string{"a"}, "ca")),
		xdstest.EDSCluster("ca", false),
		xdstest.Assignment("ca", "127.0.0.1:1"),
	}
	if v >= 2 {
		rs = append(rs, xdstest.EDSCluster("cb", true), xdstest.Assignment("cb", "127.0.0.1:2"))
	}
	return rs
}

func TestClient(t *testing.T) {
	for _, mode := range []struct {
		name  string
		delta bool
	}{{"sotw", false}, {"delta", true}} {
		t.Run(mode.name, func(t *testing.T) {
			srv := xdstest.Start(t, "127.0.0.1:0", nil)
			srv.Set(t, "n1", "1", resources(1)...)
			c, h := startClient(t, srv.Addr, mode.delta)

			want := map[string][]string{
				runtime.ListenerType: {"outbound"},
				runtime.RouteType:    {"outbound"},
				runtime.ClusterType:  {"ca"},
				runtime.EndpointType: {"ca"},
			}
			waitFor(t, "first configuration", func() error {
				if diff := cmp.Diff(want, h.names()); diff != "" {
					return fmt.Errorf("accepted (-want +got):\n%s", diff)
				}
				return nil
			})
			if !c.Connected() {
				t.Error("Connected() = false with an open stream")
			}

			// A new cluster is subscribed for its endpoints.
			srv.Set(t, "n1", "2", resources(2)...)
			want[runtime.ClusterType] = []string{"ca", "cb"}
			want[runtime.EndpointType] = []string{"ca", "cb"}
			waitFor(t, "second configuration", func() error {
				if diff := cmp.Diff(want, h.names()); diff != "" {
					return fmt.Errorf("accepted (-want +got):\n%s", diff)
				}
				return nil
			})

			// An invalid cluster is NACKed and nothing of it applied.
			bad := resources(2)
			bad[2] = proto.Clone(bad[2]).(*clusterv3.Cluster)
			bad[2].(*clusterv3.Cluster).LbPolicy = clusterv3.Cluster_MAGLEV
			srv.Set(t, "n1", "3", bad...)
			const nack = `cluster "ca": lb_policy: MAGLEV is not supported (want ROUND_ROBIN, LEAST_REQUEST, RANDOM or RING_HASH)`
			waitFor(t, "NACK", func() error {
				for _, r := range srv.Requests() {
					if r.TypeURL == runtime.ClusterType && strings.Contains(r.ErrorDetail, nack) && r.Nonce != "" {
						return nil
					}
				}
				return fmt.Errorf("no CDS request with error_detail %q", nack)
			})
			if got := c.Counts(runtime.ClusterType).Rejected; got == 0 {
				t.Error("no rejected CDS update counted")
			}
			h.mu.Lock()
			policy := h.accepted[runtime.ClusterType].Resources["ca"].Message.(*clusterv3.Cluster).GetLbPolicy()
			h.mu.Unlock()
			if policy != clusterv3.Cluster_ROUND_ROBIN {
				t.Errorf("accepted cluster has lb_policy %v after a NACK", policy)
			}

			// Removing a cluster unsubscribes its endpoints.
			srv.Set(t, "n1", "4", resources(1)...)
			want[runtime.ClusterType] = []string{"ca"}
			want[runtime.EndpointType] = []string{"ca"}
			waitFor(t, "cluster removed", func() error {
				if diff := cmp.Diff(want, h.names()); diff != "" {
					return fmt.Errorf("accepted (-want +got):\n%s", diff)
				}
				return nil
			})
		})
	}
}

func TestSotWAckCarriesVersionAndNonce(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, "n1", "v7", resources(1)...)
	startClient(t, srv.Addr, false)
	waitFor(t, "ACK of every type", func() error {
		acked := map[string]bool{}
		for _, r := range srv.Requests() {
			if r.Version == "v7" && r.Nonce != "" && r.ErrorDetail == "" {
				acked[r.TypeURL] = true
			}
		}
		if len(acked) != 4 {
			return fmt.Errorf("ACKed types %v, want all four", acked)
		}
		return nil
	})
	for _, r := range srv.Requests() {
		if r.TypeURL == runtime.RouteType && r.Nonce != "" {
			if diff := cmp.Diff([]string{"outbound"}, r.Names); diff != "" {
				t.Errorf("RDS resource_names (-want +got):\n%s", diff)
			}
		}
	}
}

func TestRepeatedNACKIsDelayed(t *testing.T) {
	// A SotW server answers a NACK with the same response again; the client must not
	// spin.
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	bad := xdstest.TCPListener("l", "127.0.0.1:15001", "c")
	bad.UseOriginalDst = nil
	bad.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.proxy_protocol"}}
	srv.Set(t, "n1", "1", bad)
	startClient(t, srv.Addr, false)
	count := func() int {
		n := 0
		for _, r := range srv.Requests() {
			if r.ErrorDetail != "" {
				n++
			}
		}
		return n
	}
	waitFor(t, "two NACKs", func() error {
		if count() < 2 {
			return fmt.Errorf("%d NACKs", count())
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // a window in which a spinning client would NACK hundreds of times
	if n := count(); n > 3 {
		t.Errorf("%d NACKs of the same version in ~0.3s; want them delayed", n)
	}
}

// reconnect waits for h to hold resources(1) from srv, replaces srv by a server on
// the same address with resources(2), and waits for h to hold those.
func reconnect(t *testing.T, srv *xdstest.Server, h *handler) *xdstest.Server {
	t.Helper()
	waitFor(t, "configuration", func() error {
		if len(h.names()[runtime.EndpointType]) != 1 {
			return fmt.Errorf("no endpoints yet")
		}
		return nil
	})
	addr := srv.Addr
	srv.Stop()
	srv2 := xdstest.Start(t, addr, nil)
	srv2.Set(t, "n1", "2", resources(2)...)
	waitFor(t, "configuration after reconnect", func() error {
		if got := h.names()[runtime.EndpointType]; len(got) != 2 {
			return fmt.Errorf("endpoints %v", got)
		}
		return nil
	})
	return srv2
}

// The node of a stream opened while the handler serves is Config.ServingNode: the
// nodes differ here by cluster, in the sidecar by the metadata field serving.
func TestReconnectSendsServingNode(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta %v", delta), func(t *testing.T) {
			srv := xdstest.Start(t, "127.0.0.1:0", nil)
			srv.Set(t, "n1", "1", resources(1)...)
			_, h := startClientWith(t, srv.Addr, delta, func(cfg *Config, h *handler) {
				cfg.Node = &corev3.Node{Id: "n1", Cluster: "starting"}
				cfg.ServingNode = &corev3.Node{Id: "n1", Cluster: "serving"}
				cfg.Serving = func() bool { return len(h.names()[runtime.ListenerType]) > 0 }
			})
			srv2 := reconnect(t, srv, h)
			first := func(s *xdstest.Server) string {
				for _, r := range s.Requests() {
					if r.NodeCluster != "" {
						return r.NodeCluster
					}
				}
				return ""
			}
			if got := first(srv); got != "starting" {
				t.Errorf("node of the first stream: cluster %q, want starting", got)
			}
			if got := first(srv2); got != "serving" {
				t.Errorf("node of the stream after the reconnection: cluster %q, want serving", got)
			}
		})
	}
}

func TestDeltaReconnectSendsVersions(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, "n1", "1", resources(1)...)
	_, h := startClient(t, srv.Addr, true)
	srv2 := reconnect(t, srv, h)
	// The first requests on the new stream subscribed the named types at once.
	var rds []string
	for _, r := range srv2.Requests() {
		if r.TypeURL == runtime.RouteType && r.Nonce == "" {
			rds = r.Names
			break
		}
	}
	if diff := cmp.Diff([]string{"outbound"}, rds); diff != "" {
		t.Errorf("initial RDS subscription on reconnect (-want +got):\n%s", diff)
	}
}

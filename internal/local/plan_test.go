package local

import (
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
)

func testWorkload() config.Workload {
	return config.Workload{Workload: &v1alpha1.Workload{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-v2", Namespace: "default", Labels: map[string]string{"app": "reviews"}},
		Spec: v1alpha1.WorkloadSpec{
			Service:        "reviews",
			ServiceAccount: "bookinfo",
			Ports: []v1alpha1.WorkloadPort{
				{Name: "http", Port: 9080, TargetPort: 18082, Protocol: v1alpha1.ProtocolHTTP},
				{Name: "grpc-api", Port: 9090, Protocol: v1alpha1.ProtocolGRPC},
			},
			Command:     []string{"./reviews", "--listen", "127.0.0.1:$(PORT)", "--grpc", "$(PORT_GRPC_API)", "--greeting", "$(GREETING)", "$$(PORT)"},
			Env:         map[string]string{"GREETING": "hi on $(PORT)", "PORT": "1"},
			Outbound:    "127.0.0.1:15101",
			Upstreams:   []v1alpha1.Upstream{{Service: "tcp-echo", Port: 9000, Bind: "127.0.0.1:19000"}},
			DrainPeriod: "2500ms",
		},
	}}
}

func TestNewPlan(t *testing.T) {
	ports := newAllocator()
	pl, err := newPlan(testWorkload(), planInput{
		XDS: "127.0.0.1:15012", DataDir: "/data", Binary: "/bin/trellis",
		Security: bootstrapSecurity{XDSCAFile: "/data/control/ca/roots.pem", TokenFile: "/data/control/join-token",
			TrustDomain: "example.org", CertTTL: time.Hour, CertRenewEvery: 2 * time.Second},
		BaseEnv: []string{"HOME=/root", "HTTP_PROXY=http://elsewhere"}, Ports: ports, AccessLog: "-",
	})
	if err != nil {
		t.Fatal(err)
	}
	grpcTarget := pl.Addrs.Target["grpc-api"]
	_, grpcPort, err := net.SplitHostPort(grpcTarget)
	if err != nil {
		t.Fatalf("grpc target %q: %v", grpcTarget, err)
	}
	want := bootstrap.Bootstrap{
		Node: bootstrap.Node{ID: "reviews-v2.default", Cluster: "reviews", Metadata: bootstrap.Metadata{
			Workload: "reviews-v2", Namespace: "default", Labels: map[string]string{"app": "reviews"},
			ServiceAccount: "bookinfo", Service: "reviews",
			Ports: []bootstrap.Port{
				{Name: "http", Port: 9080, Protocol: "HTTP", Target: "127.0.0.1:18082", Inbound: pl.Addrs.Inbound["http"]},
				{Name: "grpc-api", Port: 9090, Protocol: "GRPC", Target: grpcTarget, Inbound: pl.Addrs.Inbound["grpc-api"]},
			},
			Outbound:  "127.0.0.1:15101",
			Upstreams: []bootstrap.Upstream{{Service: "tcp-echo", Port: 9000, Bind: "127.0.0.1:19000"}},
		}},
		XDS:            "127.0.0.1:15012",
		XDSCAFile:      "/data/control/ca/roots.pem",
		TokenFile:      "/data/control/join-token",
		TrustDomain:    "example.org",
		CertTTL:        bootstrap.Duration(time.Hour),
		CertRenewEvery: bootstrap.Duration(2 * time.Second),
		Admin:          pl.Addrs.Admin,
		Metrics:        pl.Addrs.Metrics,
		AccessLog:      "-",
		DrainPeriod:    bootstrap.Duration(2500 * time.Millisecond),
	}
	if pl.Addrs.Metrics == "" || pl.Addrs.Metrics == pl.Addrs.Admin {
		t.Errorf("metrics address %q: want a port of its own", pl.Addrs.Metrics)
	}
	if diff := cmp.Diff(want, pl.Bootstrap); diff != "" {
		t.Errorf("bootstrap (-want +got):\n%s", diff)
	}
	if pl.BootstrapPath != "/data/proxies/reviews-v2.default.json" {
		t.Errorf("bootstrap path = %s", pl.BootstrapPath)
	}
	wantArgv := []string{"./reviews", "--listen", "127.0.0.1:18082", "--grpc", grpcPort, "--greeting", "hi on 18082", "$(PORT)"}
	if diff := cmp.Diff(wantArgv, pl.AppArgv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	// The mesh's variables come last, so they win over the parent's and the spec's.
	env := envLookup(pl.AppEnv)
	for k, want := range map[string]string{
		"HOME": "/root", "PORT": "18082", "PORT_HTTP": "18082", "PORT_GRPC_API": grpcPort,
		"HTTP_PROXY": "http://127.0.0.1:15101", "http_proxy": "http://127.0.0.1:15101",
		"NO_PROXY": "localhost,127.0.0.1", "TRELLIS_OUTBOUND": "127.0.0.1:15101",
		"TRELLIS_WORKLOAD": "reviews-v2", "TRELLIS_NAMESPACE": "default", "TRELLIS_BINARY": "/bin/trellis",
		"GREETING": "hi on 18082",
	} {
		if got, _ := env(k); got != want {
			t.Errorf("env %s = %q, want %q", k, got, want)
		}
	}

	// Every chosen address is distinct, and all are on loopback.
	chosen := []string{pl.Addrs.Admin, pl.Addrs.Inbound["http"], pl.Addrs.Inbound["grpc-api"], grpcTarget}
	for _, a := range chosen {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("address %q is not on 127.0.0.1", a)
		}
	}
	slices.Sort(chosen)
	if len(slices.Compact(chosen)) != 4 {
		t.Errorf("addresses are not distinct: %v", chosen)
	}

	// A restart keeps the addresses.
	again, err := newPlan(testWorkload(), planInput{XDS: "x", DataDir: "/data", Ports: ports, Prev: pl.Addrs})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pl.Addrs, again.Addrs); diff != "" {
		t.Errorf("addresses after restart (-before +after):\n%s", diff)
	}
}

func TestNewPlanClientOnly(t *testing.T) {
	w := config.Workload{Workload: &v1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "ns1"}}}
	pl, err := newPlan(w, planInput{XDS: "x", DataDir: "/d", Ports: newAllocator()})
	if err != nil {
		t.Fatal(err)
	}
	if pl.AppArgv != nil || pl.AppEnv != nil {
		t.Errorf("a workload without command got an app: %q", pl.AppArgv)
	}
	if pl.Bootstrap.Node.Cluster != "client" || pl.Bootstrap.Node.ID != "client.ns1" {
		t.Errorf("node = %+v", pl.Bootstrap.Node)
	}
	if pl.Addrs.Outbound == "" {
		t.Error("no outbound address chosen")
	}
	st := workloadState(pl, 10, 0)
	if st.Inbound != "" || st.InboundPorts != nil || len(st.App) != 0 {
		t.Errorf("state of a client-only workload: %+v", st)
	}
}

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{name: "lines", writes: []string{"a\nb\n"}, want: "[w] a\n[w] b\n"},
		{name: "split line", writes: []string{"he", "llo\nwor", "ld\n"}, want: "[w] hello\n[w] world\n"},
		{name: "partial line flushed", writes: []string{"tail"}, want: "[w] tail\n"},
		{name: "nothing", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newPrefixWriter(&out, "w")
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w.Flush()
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReserveFixed(t *testing.T) {
	ports := newAllocator()
	reserveFixed(ports, testWorkload().Workload)
	for _, port := range []int{18082, 15101, 19000} {
		if !ports.used[port] {
			t.Errorf("fixed port %d is not reserved", port)
		}
	}
	if len(ports.used) != 3 {
		t.Errorf("reserved %v, want only the three fixed ports", ports.used)
	}
}

func TestResolveAddr(t *testing.T) {
	tests := []struct {
		name       string
		addr       string
		wantPrefix string
		wantExact  bool
	}{
		{name: "fixed", addr: "127.0.0.1:15010", wantPrefix: "127.0.0.1:15010", wantExact: true},
		{name: "empty picks on loopback", addr: "", wantPrefix: "127.0.0.1:"},
		{name: "port 0 picks on that host", addr: "127.0.0.1:0", wantPrefix: "127.0.0.1:"},
		{name: "port 0 without host picks on loopback", addr: ":0", wantPrefix: "127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveAddr(tt.addr, newAllocator())
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantExact && got != tt.wantPrefix || !strings.HasPrefix(got, tt.wantPrefix) || strings.HasSuffix(got, ":0") {
				t.Errorf("resolveAddr(%q) = %q, want %q", tt.addr, got, tt.wantPrefix)
			}
		})
	}
	if _, err := resolveAddr("nonsense", newAllocator()); err == nil {
		t.Error("resolveAddr(nonsense) succeeded")
	}
}

package metrics

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

var (
	self     = reqinfo.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1", Principal: "spiffe://cluster.local/ns/default/sa/productpage"}
	reviews  = &reqinfo.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2", Principal: "spiffe://cluster.local/ns/default/sa/reviews"}
	frontend = &reqinfo.Peer{Workload: "frontend", Namespace: "web", App: "frontend", Version: "v3"}
)

func newMetrics(t *testing.T, cfg Config) *Metrics {
	t.Helper()
	cfg.Self = self
	if cfg.Service == "" {
		cfg.Service = "productpage.default.svc.cluster.local"
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// series returns every sample of the family name as "label=value,..." -> value
// (the sample count for histograms).
func series(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			out[labelString(mt.GetLabel())] = value(mt)
		}
	}
	return out
}

func labelString(ls []*dto.LabelPair) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// labels spells a label set as labelString does, from name=value pairs.
func labels(pairs map[string]string) string {
	var parts []string
	for k, v := range pairs {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// outboundLabels are the labels of a request from self to reviews.
func outboundLabels(code, flags string) map[string]string {
	return map[string]string{
		"reporter": "source", "source_workload": "productpage-v1", "source_workload_namespace": "default",
		"source_principal": self.Principal, "source_app": "productpage", "source_version": "v1",
		"destination_workload": "reviews-v2", "destination_workload_namespace": "default",
		"destination_principal": reviews.Principal, "destination_app": "reviews", "destination_version": "v2",
		"destination_service": "reviews.default.svc.cluster.local", "destination_service_name": "reviews",
		"destination_service_namespace": "default", "request_protocol": "http", "response_code": code,
		"grpc_response_status": "", "response_flags": flags, "connection_security_policy": "unknown",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestRecordHTTP(t *testing.T) {
	out := outboundLabels("200", "-")
	in := map[string]string{
		"reporter": "destination", "source_workload": "frontend", "source_workload_namespace": "web",
		"source_principal": "unknown", "source_app": "frontend", "source_version": "v3",
		"destination_workload": "productpage-v1", "destination_workload_namespace": "default",
		"destination_principal": self.Principal, "destination_app": "productpage", "destination_version": "v1",
		"destination_service": "productpage.default.svc.cluster.local", "destination_service_name": "productpage",
		"destination_service_namespace": "default", "request_protocol": "http", "response_code": "200",
		"grpc_response_status": "", "response_flags": "-", "connection_security_policy": "none",
	}
	tests := []struct {
		name string
		info reqinfo.Info
		want map[string]string
	}{
		{
			name: "outbound",
			info: reqinfo.Info{Code: 200, Cluster: "outbound|9080||reviews.default.svc.cluster.local",
				Telemetry: reqinfo.Telemetry{Peer: reviews}},
			want: out,
		},
		{
			name: "outbound subset, failed",
			info: reqinfo.Info{Code: 503, Flags: reqinfo.Flags(reqinfo.UpstreamConnectFailure) | reqinfo.Flags(reqinfo.UpstreamRetryLimitExceeded),
				Cluster: "outbound|9080|v2|reviews.default.svc.cluster.local", Telemetry: reqinfo.Telemetry{Peer: reviews}},
			want: with(out, "response_code", "503", "response_flags", "UF,URX"),
		},
		{
			name: "outbound no route",
			info: reqinfo.Info{Code: 404, Flags: reqinfo.Flags(reqinfo.NoRoute)},
			want: with(out, "response_code", "404", "response_flags", "NR", "destination_workload", "unknown",
				"destination_workload_namespace", "unknown", "destination_principal", "unknown", "destination_app", "unknown",
				"destination_version", "unknown", "destination_service", "unknown", "destination_service_name", "unknown",
				"destination_service_namespace", "unknown"),
		},
		{
			name: "outbound external service",
			info: reqinfo.Info{Code: 200, Cluster: "outbound|443||api.example.com"},
			want: with(out, "destination_workload", "unknown",
				"destination_workload_namespace", "unknown", "destination_principal", "unknown", "destination_app", "unknown",
				"destination_version", "unknown", "destination_service", "api.example.com", "destination_service_name", "api.example.com",
				"destination_service_namespace", "unknown"),
		},
		{
			name: "outbound grpc",
			info: reqinfo.Info{Code: 200, Cluster: "outbound|9080||reviews.default.svc.cluster.local",
				Telemetry: reqinfo.Telemetry{Peer: reviews, GRPC: true, GRPCStatus: 14}},
			want: with(out, "request_protocol", "grpc", "grpc_response_status", "14"),
		},
		{
			name: "inbound",
			info: reqinfo.Info{Code: 200, Cluster: "inbound|9080||",
				Telemetry: reqinfo.Telemetry{Inbound: true, Peer: frontend, Authority: "productpage:9080"}},
			want: in,
		},
		{
			name: "inbound by fqdn of another service",
			info: reqinfo.Info{Code: 200, Cluster: "inbound|9080||",
				Telemetry: reqinfo.Telemetry{Inbound: true, Peer: frontend, Authority: "pp-canary.default.svc.cluster.local:9080"}},
			want: with(in, "destination_service", "pp-canary.default.svc.cluster.local", "destination_service_name", "pp-canary"),
		},
		{
			name: "inbound over mutual TLS",
			info: reqinfo.Info{Code: 200, Cluster: "inbound|9080||", PeerIdentity: "spiffe://cluster.local/ns/web/sa/frontend",
				Telemetry: reqinfo.Telemetry{Inbound: true, Peer: frontend, Authority: "productpage:9080"}},
			want: with(in, "source_principal", "spiffe://cluster.local/ns/web/sa/frontend", "connection_security_policy", "mutual_tls"),
		},
		{
			name: "inbound from outside the mesh",
			info: reqinfo.Info{Code: 200, Cluster: "inbound|9080||",
				Telemetry: reqinfo.Telemetry{Inbound: true, Authority: "127.0.0.1:15006"}},
			want: with(in, "source_workload", "unknown", "source_workload_namespace", "unknown", "source_app", "unknown", "source_version", "unknown"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMetrics(t, Config{})
			info := tt.info
			info.Duration = 3 * time.Millisecond
			info.BytesReceived, info.BytesSent = 10, 2000
			m.RecordHTTP(&info)
			m.RecordHTTP(&info)
			want := map[string]float64{labels(tt.want): 2}
			for _, name := range []string{"trellis_requests_total", "trellis_request_duration_milliseconds", "trellis_request_bytes", "trellis_response_bytes"} {
				if diff := cmp.Diff(want, series(t, m, name)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}

func TestIstioCompat(t *testing.T) {
	m := newMetrics(t, Config{Compat: CompatIstio})
	m.RecordHTTP(&reqinfo.Info{Code: 200, Cluster: "outbound|9080||reviews.default.svc.cluster.local", Telemetry: reqinfo.Telemetry{Peer: reviews}})
	m.TCPOpened(&reqinfo.TCPInfo{Cluster: "outbound|9000||db.default.svc.cluster.local"})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		got = append(got, f.GetName())
	}
	want := []string{"istio_request_bytes", "istio_request_duration_milliseconds", "istio_requests_total",
		"istio_response_bytes", "istio_tcp_connections_closed_total", "istio_tcp_connections_opened_total",
		"istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total",
		"trellis_metrics_overflow_total"} // the overflow counter keeps its name
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("families (-want +got):\n%s", diff)
	}
	if _, err := New(Config{Compat: "linkerd"}); err == nil {
		t.Error("New accepted compat \"linkerd\"")
	}
}

func TestTCP(t *testing.T) {
	m := newMetrics(t, Config{})
	out := &reqinfo.TCPInfo{Cluster: "outbound|9000||reviews.default.svc.cluster.local", Host: "127.0.0.1:1", Peer: reviews,
		BytesReceived: 5, BytesSent: 7}
	in := &reqinfo.TCPInfo{Inbound: true, Cluster: "inbound|9000||", BytesReceived: 100, BytesSent: 200}
	for _, info := range []*reqinfo.TCPInfo{out, out, in} {
		m.TCPOpened(info)
		m.TCPClosed(info)
	}
	tcpOut := outboundLabels("", "-")
	delete(tcpOut, "response_code")
	delete(tcpOut, "grpc_response_status")
	tcpOut["request_protocol"] = "tcp"
	tcpIn := with(tcpOut, "reporter", "destination", "source_workload", "unknown", "source_workload_namespace", "unknown",
		"source_principal", "unknown", "source_app", "unknown", "source_version", "unknown",
		"destination_workload", "productpage-v1", "destination_workload_namespace", "default", "destination_principal", self.Principal,
		"destination_app", "productpage", "destination_version", "v1", "destination_service", "productpage.default.svc.cluster.local",
		"destination_service_name", "productpage", "connection_security_policy", "none")
	tests := []struct {
		name   string
		family string
		want   map[string]float64
	}{
		{name: "opened", family: "trellis_tcp_connections_opened_total", want: map[string]float64{labels(tcpOut): 2, labels(tcpIn): 1}},
		{name: "closed", family: "trellis_tcp_connections_closed_total", want: map[string]float64{labels(tcpOut): 2, labels(tcpIn): 1}},
		{name: "sent", family: "trellis_tcp_sent_bytes_total", want: map[string]float64{labels(tcpOut): 14, labels(tcpIn): 200}},
		{name: "received", family: "trellis_tcp_received_bytes_total", want: map[string]float64{labels(tcpOut): 10, labels(tcpIn): 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, series(t, m, tt.family)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCardinalityBound(t *testing.T) {
	m := newMetrics(t, Config{MaxSeries: 3})
	for code := 200; code < 210; code++ {
		m.RecordHTTP(&reqinfo.Info{Code: code, Cluster: "outbound|9080||reviews.default.svc.cluster.local", Telemetry: reqinfo.Telemetry{Peer: reviews}})
	}
	// The same overflowing key again: still counted as overflow.
	m.RecordHTTP(&reqinfo.Info{Code: 209, Cluster: "outbound|9080||reviews.default.svc.cluster.local", Telemetry: reqinfo.Telemetry{Peer: reviews}})
	got := series(t, m, "trellis_requests_total")
	if len(got) != 4 {
		t.Errorf("got %d series, want 3 and the overflow one: %v", len(got), got)
	}
	otherLabels := map[string]string{"reporter": "source", "request_protocol": "http"}
	for _, l := range httpLabels {
		if otherLabels[l] == "" {
			otherLabels[l] = "other"
		}
	}
	if n := got[labels(otherLabels)]; n != 8 {
		t.Errorf("overflow series counted %v requests, want 8", n)
	}
	if diff := cmp.Diff(map[string]float64{"family=requests": 8, "family=tcp": 0}, series(t, m, "trellis_metrics_overflow_total")); diff != "" {
		t.Errorf("overflow counter (-want +got):\n%s", diff)
	}
	// The label sets made, bounded (the overflow set is not one of them).
	if n := m.LabelSets(); n != 3 {
		t.Errorf("LabelSets = %d, want 3", n)
	}
}

func TestServiceOfAuthority(t *testing.T) {
	tests := []struct {
		name, authority string
		want            [3]string
	}{
		{name: "short", authority: "reviews:9080", want: [3]string{"reviews.shop.svc.cluster.local", "reviews", "shop"}},
		{name: "namespaced", authority: "reviews.default", want: [3]string{"reviews.default.svc.cluster.local", "reviews", "default"}},
		{name: "svc", authority: "reviews.default.svc:80", want: [3]string{"reviews.default.svc.cluster.local", "reviews", "default"}},
		{name: "fqdn upper case", authority: "Reviews.Default.svc.cluster.local", want: [3]string{"reviews.default.svc.cluster.local", "reviews", "default"}},
		{name: "ip falls back", authority: "127.0.0.1:8080", want: [3]string{"pp.shop.svc.cluster.local", "pp", "shop"}},
		{name: "other host falls back", authority: "www.example.com", want: [3]string{"pp.shop.svc.cluster.local", "pp", "shop"}},
		{name: "junk falls back", authority: "a_b", want: [3]string{"pp.shop.svc.cluster.local", "pp", "shop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, n, ns := serviceOfAuthority(tt.authority, "shop", "pp.shop.svc.cluster.local")
			if diff := cmp.Diff(tt.want, [3]string{f, n, ns}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkRecordHTTP(b *testing.B) {
	m, err := New(Config{Self: self})
	if err != nil {
		b.Fatal(err)
	}
	info := &reqinfo.Info{Code: 200, Duration: 2 * time.Millisecond, BytesSent: 1024, Cluster: "outbound|9080||reviews.default.svc.cluster.local",
		Host: "127.0.0.1:9080", Telemetry: reqinfo.Telemetry{Peer: reviews}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.RecordHTTP(info)
		}
	})
}

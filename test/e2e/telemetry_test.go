package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Issue 6, the sidecar half: after traffic through `trellis up`, both sidecars'
// /stats/prometheus count the requests with Istio's labels, a real Prometheus
// scraping them answers rate() by destination_service, a trace id reaches the app
// unchanged with both sidecars' spans exported over OTLP, and the access log lines
// are JSON.
func TestTelemetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	otlp := newOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // milliseconds
	m := startMesh(ctx, t, httpEcho("reviews-v1", "reviews", "v1"))
	metrics := metricsAddrs(t, m.up)
	client, reviews := metrics["client"], metrics["reviews-v1"]
	waitAnswer(ctx, t, m.c, request{target: "http://reviews:8080/"}, http.StatusOK, "v1")

	const fqdn = "reviews.default.svc.cluster.local"
	labels := map[string]string{
		"source_workload": "client", "source_workload_namespace": "default", "source_app": "client",
		"destination_workload": "reviews-v1", "destination_workload_namespace": "default",
		"destination_app": "reviews", "destination_version": "v1", "destination_principal": "spiffe://cluster.local/ns/default/sa/default",
		"destination_service": fqdn, "destination_service_name": "reviews", "destination_service_namespace": "default",
		"request_protocol": "http", "response_flags": "-",
	}
	sidecars := []struct {
		name, addr string
		labels     map[string]string
	}{
		{name: "client", addr: client, labels: map[string]string{"reporter": "source", "connection_security_policy": "unknown"}},
		{name: "reviews", addr: reviews, labels: map[string]string{"reporter": "destination",
			"connection_security_policy": "mutual_tls", "source_principal": "spiffe://cluster.local/ns/default/sa/default"}},
	}

	t.Run("request counts with labels", func(t *testing.T) {
		count := func(addr, code string, more map[string]string) (float64, error) {
			text, err := scrapeText(ctx, addr)
			if err != nil {
				return 0, err
			}
			return sumSamples(text, "trellis_requests_total", merged(labels, more, map[string]string{"response_code": code})), nil
		}
		before := map[string][2]float64{}
		for _, sc := range sidecars {
			ok, err := count(sc.addr, "200", sc.labels)
			if err != nil {
				t.Fatal(err)
			}
			failed, _ := count(sc.addr, "500", sc.labels)
			before[sc.name] = [2]float64{ok, failed}
		}
		if _, err := send(ctx, m.c, request{target: "http://reviews:8080/"}, 10); err != nil {
			t.Fatal(err)
		}
		// 500, not 503: the default retry policy retries 503s.
		if got, err := send(ctx, m.c, request{target: "http://reviews:8080/?status=500"}, 3); err != nil || got.status[500] != 3 {
			t.Fatalf("3 requests for a 500: %v, %v", got, err)
		}
		for _, sc := range sidecars {
			t.Run(sc.name, func(t *testing.T) {
				eventually(ctx, t, "request counts", func() error {
					ok, err := count(sc.addr, "200", sc.labels)
					if err != nil {
						return err
					}
					failed, err := count(sc.addr, "500", sc.labels)
					if err != nil {
						return err
					}
					if got := [2]float64{ok - before[sc.name][0], failed - before[sc.name][1]}; got != [2]float64{10, 3} {
						text, _ := scrapeText(ctx, sc.addr)
						return fmt.Errorf("new 200s and 500s = %v, want [10 3]; requests:\n%s", got, grepLines(text, "trellis_requests_total"))
					}
					return nil
				})
			})
		}
	})

	t.Run("prometheus rate by destination_service", func(t *testing.T) {
		prom := startPrometheus(ctx, t, client, reviews)
		// Keep traffic flowing so that the rate is not zero; the test owns the
		// goroutine and stops it before it returns.
		trafficCtx, stopTraffic := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				do(trafficCtx, m.c, request{target: "http://reviews:8080/"})
				select {
				case <-trafficCtx.Done():
					return
				case <-tick.C:
				}
			}
		})
		defer func() { stopTraffic(); wg.Wait() }()
		query := `sum by (destination_service, reporter) (rate(trellis_requests_total[1m]))`
		eventually(ctx, t, "prometheus answering "+query, func() error {
			series, err := promQuery(ctx, prom, query)
			if err != nil {
				return err
			}
			got := map[string]bool{}
			for _, s := range series {
				if s.Metric["destination_service"] == fqdn && s.Value > 0 {
					got[s.Metric["reporter"]] = true
				}
			}
			if !got["source"] || !got["destination"] {
				return fmt.Errorf("series with a positive rate for %s by reporter: %v; all: %+v", fqdn, got, series)
			}
			return nil
		})
	})

	t.Run("trace id reaches the app", func(t *testing.T) {
		const tid = "0af7651916cd43dd8448eb211c80319c"
		a, err := do(ctx, m.c, request{target: "http://reviews:8080/debug",
			header: http.Header{"Traceparent": {"00-" + tid + "-b7ad6b7169203331-01"}}})
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("GET /debug: %d, %v", a.status, err)
		}
		// fortio's /debug echoes the request headers as the app received them.
		if !strings.Contains(a.body, "Traceparent: 00-"+tid+"-") {
			t.Errorf("the app did not get trace id %s:\n%s", tid, a.body)
		}
		if strings.Contains(strings.ToLower(a.body), "x-trellis-peer") {
			t.Errorf("the app got the x-trellis-peer header:\n%s", a.body)
		}
		id, _ := hex.DecodeString(tid)
		eventually(ctx, t, "both sidecars' spans at the OTLP receiver", func() error {
			kinds := map[string]bool{}
			for _, s := range otlp.trace(id) {
				kinds[s.service+" "+s.span.GetKind().String()] = true
			}
			if !kinds["client.default SPAN_KIND_CLIENT"] || !kinds["reviews.default SPAN_KIND_SERVER"] {
				return fmt.Errorf("spans of the trace: %v", kinds)
			}
			return nil
		})

		t.Run("access log", func(t *testing.T) {
			eventually(ctx, t, "access log lines of the request", func() error {
				reporters := map[string]bool{}
				for _, line := range strings.Split(m.up.stdout.String(), "\n") {
					_, js, ok := strings.Cut(line, "/proxy] ")
					if !ok || !strings.HasPrefix(js, "{") {
						continue
					}
					var entry map[string]any
					if err := json.Unmarshal([]byte(js), &entry); err != nil {
						return fmt.Errorf("access log line is not JSON: %v: %s", err, line)
					}
					if entry["trace_id"] != tid {
						continue
					}
					for _, f := range []string{"time", "method", "authority", "path", "protocol", "response_code", "response_flags",
						"duration_ms", "bytes_sent", "bytes_received", "upstream_cluster", "upstream_host", "source", "destination", "reporter"} {
						if _, ok := entry[f]; !ok {
							return fmt.Errorf("access log line without %q: %s", f, js)
						}
					}
					if entry["path"] != "/debug" || entry["response_code"] != 200.0 {
						return fmt.Errorf("access log line: %s", js)
					}
					src, _ := entry["source"].(map[string]any)
					if src["workload"] != "client" {
						return fmt.Errorf("access log line's source: %s", js)
					}
					reporters[fmt.Sprint(entry["reporter"])] = true
				}
				if !reporters["source"] || !reporters["destination"] {
					return fmt.Errorf("access log lines with trace id %s, by reporter: %v", tid, reporters)
				}
				return nil
			})
		})
	})
}

// metricsAddrs reads the sidecars' metrics addresses from up's state file.
func metricsAddrs(t *testing.T, up *upProcess) map[string]string {
	t.Helper()
	var st struct {
		Workloads []struct {
			Name    string `json:"name"`
			Metrics string `json:"metrics"`
		} `json:"workloads"`
	}
	data, err := os.ReadFile(up.statePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, w := range st.Workloads {
		if w.Metrics == "" {
			t.Fatalf("workload %s has no metrics address in the state: %s", w.Name, data)
		}
		out[w.Name] = w.Metrics
	}
	return out
}

func scrapeText(ctx context.Context, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats/prometheus", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s/stats/prometheus: %s", addr, resp.Status)
	}
	return string(body), err
}

// sumSamples adds the samples of the text exposition format named name whose labels
// include want.
func sumSamples(text, name string, want map[string]string) float64 {
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		end := strings.LastIndex(rest, "} ")
		if end < 0 {
			continue
		}
		labels := parseLabels(rest[:end])
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
				break
			}
		}
		if v, err := strconv.ParseFloat(strings.Fields(rest[end+2:])[0], 64); match && err == nil {
			total += v
		}
	}
	return total
}

// parseLabels reads `a="x",b="y"` (values without escaped quotes).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		value, after, _ := strings.Cut(rest, `"`)
		out[name] = value
		s = strings.TrimPrefix(after, ",")
	}
	return out
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func merged(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// startPrometheus runs the Debian package's prometheus on a free loopback port,
// scraping the targets' /stats/prometheus every second, until the test ends; it
// returns its address once ready.
func startPrometheus(ctx context.Context, t *testing.T, targets ...string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("prometheus is not installed (.ci/run installs the Debian package): %v", err)
		}
		t.Skipf("prometheus is not installed (apt-get install prometheus): %v", err)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: trellis-sidecars
  metrics_path: /stats/prometheus
  static_configs:
  - targets: [%s]
`, strings.Join(quoted, ", "))
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	var out syncBuffer
	cmd := exec.Command(bin, "--config.file="+configPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", tail(out.String(), 50))
		}
	})
	eventually(ctx, t, "prometheus ready", func() error {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return addr
}

// promSeries is one series of an instant vector.
type promSeries struct {
	Metric map[string]string
	Value  float64
}

// promQuery runs an instant query against Prometheus's HTTP API.
func promQuery(ctx context.Context, addr, query string) ([]promSeries, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decoding the answer to %s: %w", query, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s %s", query, body.Status, body.Error)
	}
	var out []promSeries
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", query, r.Value, err)
		}
		out = append(out, promSeries{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// otlpSink is an OTLP/HTTP trace receiver keeping every span with its service name.
type otlpSink struct {
	*httptest.Server
	mu    sync.Mutex
	spans []sinkSpan
}

type sinkSpan struct {
	service string
	span    *tracepb.Span
}

func newOTLPSink(t *testing.T) *otlpSink {
	s := &otlpSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		var export collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(data, &export)
		}
		if err != nil || r.URL.Path != "/v1/traces" {
			http.Error(w, fmt.Sprintf("want an OTLP protobuf export at /v1/traces: %v", err), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, rs := range export.GetResourceSpans() {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					s.spans = append(s.spans, sinkSpan{service: service, span: sp})
				}
			}
		}
		s.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *otlpSink) trace(id []byte) []sinkSpan {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sinkSpan
	for _, sp := range s.spans {
		if bytes.Equal(sp.span.GetTraceId(), id) {
			out = append(out, sp)
		}
	}
	return out
}

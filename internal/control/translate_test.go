package control

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
	"trellis.dev/trellis/internal/registry"
	"trellis.dev/trellis/internal/store"
	"trellis.dev/trellis/internal/xdsserver"
)

// syncedSource is a file source that has loaded everything without problems.
type syncedSource struct{ synced chan struct{} }

func (s syncedSource) Synced() <-chan struct{} { return s.synced }
func (s syncedSource) Errors() []error         { return nil }

func TestTranslatorDebounces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.New()
	metrics := prometheus.NewRegistry()
	xds, err := xdsserver.New(xdsserver.Config{Registry: reg, Metrics: metrics, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	src := syncedSource{synced: make(chan struct{})}
	close(src.synced)
	tr, err := newTranslator(translatorConfig{
		store: store.New(), source: src, registry: reg, xds: xds, metrics: metrics, logger: log,
		debounce: 50 * time.Millisecond, maxDelay: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tr.run(runCtx)
	}()
	defer func() {
		stop()
		wg.Wait()
	}()
	poll(t, "the first translation", func() bool { return tr.state.Load() != nil })

	// A burst of registrations, closer together than the debounce, costs one
	// translation (two if the timer fires between two of them on a slow machine).
	const n = 10
	for i := range n {
		reg.Register(registry.Stream{Protocol: registry.SotW, ID: int64(i)}, registry.Instance{
			NodeID: "w" + string(rune('a'+i)) + ".default", Metadata: bootstrap.Metadata{Namespace: "default"},
		})
		time.Sleep(5 * time.Millisecond) // spacing the burst, not waiting for a condition
	}
	poll(t, "every proxy translated", func() bool { return len(tr.state.Load().Proxies) == n })
	if got := translations(t, metrics); got < 2 || got > 3 {
		t.Errorf("%d translations for a start and a burst of %d changes, want 2 or 3", got, n)
	}
	if got := len(xds.Nodes()); got != n {
		t.Errorf("%d nodes have a snapshot, want %d", got, n)
	}
}

func translations(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "trellis_translation_duration_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestTranslatorReportsTrafficProblems checks that traffic rules that cannot be
// applied and unsupported fields are problems at their fields' lines, logged once.
func TestTranslatorReportsTrafficProblems(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	mesh := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [nowhere]
  tls:
  - route: [{destination: {host: nowhere}}]
`
	if err := os.WriteFile(path, []byte(mesh), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := config.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New()
	st.Replace(path, set)

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := registry.New()
	metrics := prometheus.NewRegistry()
	xds, err := xdsserver.New(xdsserver.Config{Registry: reg, Metrics: metrics, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	src := syncedSource{synced: make(chan struct{})}
	close(src.synced)
	tr, err := newTranslator(translatorConfig{
		store: st, source: src, registry: reg, xds: xds, metrics: metrics, logger: log,
		debounce: 10 * time.Millisecond, maxDelay: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tr.run(runCtx)
	}()
	defer func() {
		stop()
		wg.Wait()
	}()
	poll(t, "the first translation", func() bool { return tr.state.Load() != nil })
	// A second translation must not log the same problems again.
	reg.Register(registry.Stream{Protocol: registry.SotW, ID: 1}, registry.Instance{NodeID: "a.default"})
	poll(t, "the second translation", func() bool { return len(tr.state.Load().Proxies) == 1 })

	want := []string{
		path + `:5: VirtualService default/r: spec.hosts[0]: no service "nowhere" seen from namespace "default"; the host is skipped`,
		"unsupported: " + path + ":6: VirtualService default/r: spec.tls: not supported: TLS routes need routing by SNI, which the sidecar does not do; ignored",
	}
	if diff := cmp.Diff(want, tr.state.Load().Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	for _, p := range want {
		if n := strings.Count(logs.String(), strconv.Quote(p)); n != 1 {
			t.Errorf("problem %q logged %d times, want once; logs:\n%s", p, n, logs.String())
		}
	}
	wantGauge := map[string]float64{"error": 1, "unsupported": 1, "warning": 0}
	if diff := cmp.Diff(wantGauge, problemGauges(t, metrics)); diff != "" {
		t.Errorf("trellis_config_problems (-want +got):\n%s", diff)
	}
}

// problemGauges reads trellis_config_problems by class.
func problemGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "trellis_config_problems" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return got
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
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

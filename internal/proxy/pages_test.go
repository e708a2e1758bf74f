package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/binpages"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// TestReleaseStartupPages: once ready, the sidecar gives back the pages of its
// executable's code and read-only data (here the test binary's, all of them mapped
// first), keeps serving, and the resident size of those mappings stays well below
// what it was; the metrics show what was released and the process's memory.
func TestReleaseStartupPages(t *testing.T) {
	app := appServer(t, "echo", false)
	inbound := freeAddr(t)
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	xds.Set(t, serverNode, "1",
		xdstest.InlineHTTPListener(names.InboundListener(80), inbound,
			xdstest.RouteConfig(names.InboundListener(80), xdstest.VirtualHost("inbound", []string{"*"}, names.InboundCluster(80)))),
		xdstest.StaticCluster(names.InboundCluster(80), false, hostOf(app.URL)))

	before := populateExecutable(t)
	b := &bootstrap.Bootstrap{
		Node:    bootstrap.Node{ID: serverNode, Cluster: "echo", Metadata: bootstrap.Metadata{Workload: "echo", Namespace: "default"}},
		XDS:     xds.Addr,
		Admin:   "127.0.0.1:0",
		Metrics: "127.0.0.1:0",
	}
	p, err := New(Config{Bootstrap: b, DrainPeriod: time.Second, Logger: testLogger(), ReleaseStartupPages: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancelCause(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop(SkipDrainPeriod)
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	eventually(t, 10*time.Second, "pages released", func() error {
		if p.pagesReleased.Load() == 0 {
			return errNotYet
		}
		return nil
	})
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 200 {
		if err := expect(client, fmt.Sprintf("http://%s/after-release/%d", inbound, i), "echo", 200, "app=echo"); err != nil {
			t.Fatalf("after the release: %v", err)
		}
	}
	released, after := p.pagesReleased.Load(), executableResident(t)
	t.Logf("executable's read-only mappings: %d KiB resident before, %d KiB released, %d KiB resident after 200 requests",
		before>>10, released>>10, after>>10)
	// The test's own work (xDS server, app, client) maps some pages again: about
	// 40 % of this test binary's, against 25 % of the trellis binary's under load
	// (docs/benchmarks.md).
	if released < before*9/10 || after > before*3/4 {
		t.Errorf("executable's read-only mappings: %d KiB resident before, %d KiB released, %d KiB after 200 requests; want most of it released and not back",
			before>>10, released>>10, after>>10)
	}

	metrics := scrapeText(t, "http://"+p.MetricsAddr()+"/stats/prometheus")
	for _, want := range []string{
		fmt.Sprintf("trellis_startup_pages_released_bytes %g", float64(released)),
		`trellis_process_resident_memory_bytes{kind="file"}`,
		`trellis_process_resident_memory_bytes{kind="anon"}`,
		`trellis_process_page_faults_total{kind="minor"}`,
		"process_resident_memory_bytes ",
		"go_memstats_heap_inuse_bytes ",
		"go_cpu_classes_gc_total_cpu_seconds_total ",
		"go_gc_cycles_total_gc_cycles_total ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/stats/prometheus has no %q", want)
		}
	}
}

// populateExecutable maps every page of the test binary's code and read-only data
// (MADV_POPULATE_READ), so that what the sidecar releases is known, and returns
// their resident size.
func populateExecutable(t *testing.T) uint64 {
	t.Helper()
	for _, m := range executableMappings(t) {
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_POPULATE_READ)
		if errno != 0 {
			t.Fatalf("populating %s %x-%x: %v", m.Path, m.Start, m.End, errno)
		}
	}
	return executableResident(t)
}

func executableResident(t *testing.T) uint64 {
	t.Helper()
	var rss uint64
	for _, m := range executableMappings(t) {
		rss += m.Rss
	}
	return rss
}

// executableMappings are the mappings binpages.Release releases.
func executableMappings(t *testing.T) []binpages.Mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := binpages.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	pc, _, _, _ := runtime.Caller(0)
	return binpages.Releasable(maps, uint64(pc))
}

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v", url, resp.StatusCode, err)
	}
	return string(body)
}

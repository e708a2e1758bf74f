package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// artifactsEnv names a directory for test artifacts (the dashboard's screenshot);
// default test/e2e/artifacts (ignored by git).
const artifactsEnv = "TRELLIS_E2E_ARTIFACTS"

// Issue 6, the dashboard: after traffic through `trellis up`, a real headless
// Chromium shows the mesh's services and edges in the service graph, and the live
// tap shows a request made during the test; `trellis stat` and `trellis tap` show
// the same in a terminal. The screenshot is kept.
func TestDashboard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, httpEcho("reviews-v1", "reviews", "v1")+httpEcho("reviews-v2", "reviews", "v2")+
		httpEcho("ratings-v1", "ratings", "v1"))
	dash := dashboardAddr(t, m.up)
	base := "http://" + dash

	// A sidecar becomes an endpoint once it serves: wait until the client's sidecar
	// balances over every replica, so that no request of the traffic below finds a
	// service without endpoints (its 503 would count against the success rates).
	clientSidecar := m.st.workload(t, "client")
	for cluster, want := range map[string]uint64{"reviews": 2, "ratings": 1} {
		eventually(ctx, t, "the client's sidecar knows every "+cluster+" replica", func() error {
			n, err := statSum(ctx, clientSidecar, "cluster.outbound|8080||"+cluster+".", ".membership_total")
			if err == nil && n != want {
				err = fmt.Errorf("%d endpoints, want %d", n, want)
			}
			return err
		})
	}

	// Traffic to both services, a few ratings failing, until the test ends.
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			do(trafficCtx, m.c, request{target: "http://reviews:8080/reviews"})
			status := ""
			if i%10 == 0 {
				status = "?status=500"
			}
			do(trafficCtx, m.c, request{target: "http://ratings:8080/ratings" + status})
			select {
			case <-trafficCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	defer func() { stopTraffic(); wg.Wait() }()

	const (
		client  = "workload/default/client"
		reviews = "service/reviews.default.svc.cluster.local"
		ratings = "service/ratings.default.svc.cluster.local"
	)
	wantEdges := []string{
		client + ">" + ratings, client + ">" + reviews,
		ratings + ">workload/default/ratings-v1",
		reviews + ">workload/default/reviews-v1", reviews + ">workload/default/reviews-v2",
	}
	slices.Sort(wantEdges)

	b := startBrowser(ctx, t, 1400, 1000)
	if err := b.navigate(ctx, base+"/"); err != nil {
		t.Fatal(err)
	}

	t.Run("service graph", func(t *testing.T) {
		eventually(ctx, t, "the graph's services and edges with traffic in the page", func() error {
			var g struct {
				Nodes []string `json:"nodes"`
				Edges []string `json:"edges"`
			}
			err := b.eval(ctx, `({
				nodes: [...document.querySelectorAll("#graph [data-node-id]")].map((n) => n.dataset.nodeId),
				edges: [...document.querySelectorAll("#graph [data-edge-source]")]
					.filter((e) => parseFloat(e.dataset.rps) > 0)
					.map((e) => e.dataset.edgeSource + ">" + e.dataset.edgeTarget),
			})`, &g)
			if err != nil {
				return err
			}
			for _, n := range []string{client, reviews, ratings, "workload/default/reviews-v1", "workload/default/reviews-v2", "workload/default/ratings-v1"} {
				if !slices.Contains(g.Nodes, n) {
					return fmt.Errorf("no node %s in the graph; nodes %v", n, g.Nodes)
				}
			}
			slices.Sort(g.Edges)
			if !slices.Equal(g.Edges, wantEdges) {
				return fmt.Errorf("edges with traffic %v, want %v", g.Edges, wantEdges)
			}
			return nil
		})
		var rows []string
		if err := b.eval(ctx, `[...document.querySelectorAll("#services tr[data-service]")].map((r) => r.dataset.service)`, &rows); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(rows, "reviews.default.svc.cluster.local") || !slices.Contains(rows, "ratings.default.svc.cluster.local") {
			t.Errorf("services table rows: %v", rows)
		}
	})

	t.Run("live tap", func(t *testing.T) {
		// The dashboard taps the sidecars once the page's tap stream is open.
		eventually(ctx, t, "every sidecar tapped", func() error {
			var tapped string
			if err := b.eval(ctx, `document.getElementById("status").dataset.tapped || ""`, &tapped); err != nil {
				return err
			}
			if want := fmt.Sprint(len(m.st.Workloads)); tapped != want {
				return fmt.Errorf("%q sidecars tapped, want %s", tapped, want)
			}
			return nil
		})
		path := "/dashboard-e2e-" + randomHex(t)
		if a, err := do(ctx, m.c, request{target: "http://reviews:8080" + path}); err != nil || a.status != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, a.status, err)
		}
		eventually(ctx, t, "the request in the tap view", func() error {
			var reporters []string
			err := b.eval(ctx, fmt.Sprintf(`[...document.querySelectorAll("#tap tr")]
				.filter((r) => r.dataset.path === %q).map((r) => r.dataset.reporter + " " + r.dataset.code)`, path), &reporters)
			if err != nil {
				return err
			}
			slices.Sort(reporters)
			if !slices.Equal(reporters, []string{"destination 200", "source 200"}) {
				return fmt.Errorf("tap rows of %s: %v", path, reporters)
			}
			return nil
		})
	})

	t.Run("screenshot", func(t *testing.T) {
		png, err := b.screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dir := os.Getenv(artifactsEnv)
		if dir == "" {
			dir = "artifacts"
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "dashboard.png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(file)
		t.Logf("dashboard screenshot: %s (%d bytes)", abs, len(png))
	})

	t.Run("trellis stat", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, trellisBin, "stat", "--dashboard", base, "svc", "reviews").CombinedOutput()
		if err != nil {
			t.Fatalf("trellis stat: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "reviews ") ||
			!strings.Contains(lines[1], "100.00%") || !strings.Contains(lines[1], "default/reviews-v1,default/reviews-v2") {
			t.Errorf("trellis stat svc reviews:\n%s", out)
		}
	})

	t.Run("trellis tap", func(t *testing.T) {
		var out syncBuffer
		cmd := exec.CommandContext(ctx, trellisBin, "tap", "--dashboard", base, "--service", "reviews")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		path := "/tap-cli-" + randomHex(t)
		eventually(ctx, t, "trellis tap printing the request", func() error {
			do(ctx, m.c, request{target: "http://reviews:8080" + path})
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.Contains(line, " out client → reviews-v") && strings.Contains(line, "GET reviews:8080"+path+" 200 ") {
					return nil
				}
			}
			return fmt.Errorf("trellis tap printed:\n%s", tail(out.String(), 10))
		})
	})
}

// dashboardAddr reads the dashboard's address from the state file.
func dashboardAddr(t *testing.T, up *upProcess) string {
	t.Helper()
	data, err := os.ReadFile(up.statePath)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		ControlPlane struct {
			Dashboard string `json:"dashboard"`
		} `json:"controlPlane"`
	}
	if err := json.Unmarshal(data, &st); err != nil || st.ControlPlane.Dashboard == "" {
		t.Fatalf("no controlPlane.dashboard in the state file (%v):\n%s", err, data)
	}
	return st.ControlPlane.Dashboard
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

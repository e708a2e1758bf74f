package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	const duration = 25 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	statePath := filepath.Join(t.TempDir(), "state.json")
	start := time.Now()
	demo := startTrellis(t, statePath, "demo", "--duration", duration.String(), "--state", statePath)
	st := demo.waitState(ctx, t, 6)
	c := proxyClient(st.workload(t, "loadgen").Outbound)

	seen := map[string]bool{}
	eventually(ctx, t, "the frontend showing both reviews versions", func() error {
		resp, body, err := get(ctx, c, "http://frontend:9080/", "")
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s: %s", resp.Status, body)
		}
		var page struct {
			Details *struct{ Title string }
			Reviews *struct{ Version string }
			Errors  []string
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			return err
		}
		if page.Details == nil || page.Reviews == nil || len(page.Errors) > 0 {
			return fmt.Errorf("incomplete page: %s", body)
		}
		seen[page.Reviews.Version] = true
		if !seen["v1"] || !seen["v2"] {
			return fmt.Errorf("reviews versions seen: %v", seen)
		}
		return nil
	})

	// The reviews-v2 Service selects v2 only.
	for range 5 {
		resp, body, err := get(ctx, c, "http://reviews-v2:9080/reviews", "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"version": "v2"`) {
			t.Fatalf("reviews-v2: status %s, body %s", resp.Status, body)
		}
	}

	out := demo.stdout.String()
	for _, want := range []string{"Trellis demo is running", "curl -x http://" + st.workload(t, "loadgen").Outbound + " http://frontend:9080/"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	eventually(ctx, t, "a load generator summary with answers", func() error {
		if !strings.Contains(demo.stdout.String(), "[loadgen] loadgen http://frontend:9080/: ") {
			return errors.New("no summary yet")
		}
		if !strings.Contains(demo.stdout.String(), " 200=") {
			return errors.New("no 200 in the summaries yet")
		}
		return nil
	})

	// --duration stops the demo by itself.
	select {
	case <-demo.exited:
		if demo.err != nil {
			t.Errorf("demo exited with %v, want status 0", demo.err)
		}
		if elapsed := time.Since(start); elapsed < duration {
			t.Errorf("demo exited after %s, before its --duration %s", elapsed, duration)
		}
	case <-ctx.Done():
		t.Fatalf("demo did not stop by itself after --duration %s", duration)
	}
}

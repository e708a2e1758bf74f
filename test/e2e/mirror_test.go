package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Istio's "Mirroring" task: all traffic goes to v1, and v2 receives a copy of it
// (or of a share of it), whose answer nobody sees.
func TestMirroring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, twoVersions()+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-mirror: {exact: half}}}]
    route: [{destination: {host: echo, subset: v1}}]
    mirror: {host: echo, subset: v2}
    mirrorPercentage: {value: 50}
  - route: [{destination: {host: echo, subset: v1}}]
    mirror: {host: echo, subset: v2}
`)
	r := request{target: "http://echo:8080/"}
	half := request{target: "http://echo:8080/", header: http.Header{"X-Mirror": {"half"}}}
	waitAnswer(ctx, t, m.c, r, http.StatusOK, "v1")
	mirror := m.st.workload(t, "echo-v2")
	// The mirror's endpoint is known once a request shows up at its sidecar.
	primed := uint64(0) // requests sent so far, all mirrored once the mirror is known
	eventually(ctx, t, "a mirrored request at echo-v2", func() error {
		if _, err := do(ctx, m.c, r); err != nil {
			return err
		}
		primed++
		n, err := inboundRequests(ctx, mirror)
		if err == nil && n == 0 {
			err = fmt.Errorf("none yet")
		}
		return err
	})
	// Copies travel in the background: let the last priming copies land (or be lost
	// before the mirror was known) so they are not counted below.
	last := uint64(0)
	eventually(ctx, t, "the priming copies settled", func() error {
		n, err := inboundRequests(ctx, mirror)
		if err != nil {
			return err
		}
		if n == primed || n == last { // all arrived, or none arrived for a poll interval
			return nil
		}
		last = n
		return fmt.Errorf("%d copies of %d priming requests, still arriving", n, primed)
	})

	// mirrored sends n requests like r, all answered by v1, and returns how many
	// reached the mirror, once that count has settled.
	mirrored := func(t *testing.T, r request, n int, wantAtLeast uint64) uint64 {
		t.Helper()
		before, err := inboundRequests(ctx, mirror)
		if err != nil {
			t.Fatal(err)
		}
		got, err := send(ctx, m.c, r, n)
		if err != nil {
			t.Fatal(err)
		}
		if got.versions["v1"] != n {
			t.Errorf("%d requests: %v; want all 200 from v1", n, got)
		}
		// Copies are sent in the background: wait for the ones expected.
		var copies uint64
		eventually(ctx, t, "the mirrored copies", func() error {
			after, err := inboundRequests(ctx, mirror)
			if err != nil {
				return err
			}
			if copies = after - before; copies < wantAtLeast {
				return fmt.Errorf("%d copies so far", copies)
			}
			return nil
		})
		return copies
	}

	t.Run("every request", func(t *testing.T) {
		// A priming copy still in flight when the settle check saw a quiet poll can
		// land now: one more than 50 is that, not a request mirrored twice.
		if n := mirrored(t, r, 50, 50); n != 50 && n != 51 {
			t.Errorf("v2 received %d copies of 50 requests, want 50", n)
		}
	})
	t.Run("half the requests", func(t *testing.T) {
		// 100 expected of 200; 60..140 is beyond five standard deviations.
		if n := mirrored(t, half, 200, 60); n > 140 {
			t.Errorf("v2 received %d copies of 200 requests, want about 100 (60..140)", n)
		}
	})
}

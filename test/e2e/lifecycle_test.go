package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

const echoV1 = `
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}}
spec:
  service: echo
  ports: [{name: http, port: 8080}]
  command: {{.EchoV1}}
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: client}
spec:
  outbound: {{.Outbound}}
`

const echoV2AndCanary = `---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: echo-v2, labels: {app: echo, version: v2}}
spec:
  service: echo
  ports: [{name: http, port: 8080}]
  command: {{.EchoV2}}
---
apiVersion: v1
kind: Service
metadata: {name: echo-canary}
spec:
  selector: {app: echo, version: {{.Canary}}}
  ports: [{name: http, port: 8080}]
`

func echoData(outbound, canary string) map[string]string {
	return map[string]string{
		"EchoV1":   fortioServer("$(PORT)", "", `"-echo-server-default-params", "header=X-Version:v1"`),
		"EchoV2":   fortioServer("$(PORT)", "", `"-echo-server-default-params", "header=X-Version:v2"`),
		"Outbound": outbound,
		"Canary":   canary,
	}
}

// versions sends n requests to target through the proxy and counts the X-Version
// of the answers; any status but 200 is an error.
func versions(ctx context.Context, c *http.Client, target string, n int) (map[string]int, error) {
	counts := map[string]int{}
	for range n {
		resp, _, err := get(ctx, c, target, "")
		if err != nil {
			return counts, err
		}
		if resp.StatusCode != http.StatusOK {
			return counts, fmt.Errorf("%s: status %s", target, resp.Status)
		}
		counts[resp.Header.Get("X-Version")]++
	}
	return counts, nil
}

func TestLiveReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outbound := freeAddr(t)
	up, meshPath := startUp(t, render(t, echoV1, echoData(outbound, "v2")))
	up.waitState(ctx, t, 2)
	c := proxyClient(outbound)
	eventually(ctx, t, "echo v1", func() error {
		got, err := versions(ctx, c, "http://echo:8080/", 1)
		if err == nil && got["v1"] != 1 {
			err = fmt.Errorf("versions %v", got)
		}
		return err
	})

	write := func(content string) {
		t.Helper()
		replaceFile(t, meshPath, content)
	}

	// Adding a workload and a Service: both take effect without a restart.
	withV2 := render(t, echoV1+echoV2AndCanary, echoData(outbound, "v2"))
	write(withV2)
	eventually(ctx, t, "the new workload in the state", func() error {
		st, err := up.readState()
		if err == nil && len(st.Workloads) != 3 {
			err = fmt.Errorf("%d workloads", len(st.Workloads))
		}
		return err
	})
	eventually(ctx, t, "echo v2 behind echo", func() error {
		got, err := versions(ctx, c, "http://echo:8080/", 10)
		if err == nil && got["v2"] == 0 {
			err = fmt.Errorf("versions %v", got)
		}
		return err
	})
	eventually(ctx, t, "only v2 behind echo-canary", func() error {
		got, err := versions(ctx, c, "http://echo-canary:8080/", 10)
		if err == nil && got["v2"] != 10 {
			err = fmt.Errorf("versions %v", got)
		}
		return err
	})

	// Changing the Service's selector moves it to v1.
	write(render(t, echoV1+echoV2AndCanary, echoData(outbound, "v1")))
	eventually(ctx, t, "only v1 behind echo-canary", func() error {
		got, err := versions(ctx, c, "http://echo-canary:8080/", 10)
		if err == nil && got["v1"] != 10 {
			err = fmt.Errorf("versions %v", got)
		}
		return err
	})
	before, err := up.readState()
	if err != nil {
		t.Fatal(err)
	}

	// An invalid edit is reported with file and line; the mesh keeps serving.
	valid := render(t, echoV1+echoV2AndCanary, echoData(outbound, "v1"))
	invalid := valid + "---\napiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: broken}\nspec:\n  servce: x\n"
	badLine := strings.Count(valid, "\n") + 6
	write(invalid)
	want := fmt.Sprintf("mesh.yaml:%d:", badLine)
	eventually(ctx, t, "the invalid edit reported as "+want, func() error {
		if !strings.Contains(up.stderr.String(), want) {
			return errors.New("not reported yet")
		}
		return nil
	})
	got, err := versions(ctx, c, "http://echo:8080/", 20)
	if err != nil || got["v1"] == 0 || got["v2"] == 0 {
		t.Errorf("after an invalid edit: versions %v, error %v; want traffic to both versions", got, err)
	}
	after, err := up.readState()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after.pids()) != fmt.Sprint(before.pids()) {
		t.Errorf("an invalid edit restarted processes: pids %v, then %v", before.pids(), after.pids())
	}
}

func TestShutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	up, _ := startUp(t, render(t, echoV1, echoData(freeAddr(t), "v1")))
	st := up.waitState(ctx, t, 2)
	pids := st.pids()
	if len(pids) != 4 {
		t.Fatalf("state lists pids %v, want control, 2 sidecars and 1 app", pids)
	}
	for _, pid := range pids {
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			t.Fatalf("pid %d from the state does not run", pid)
		}
	}
	if !up.stop(30 * time.Second) {
		t.Fatal("trellis up did not exit within 30s of SIGTERM")
	}
	if up.err != nil {
		t.Errorf("trellis up exited with %v after SIGTERM, want status 0", up.err)
	}
	// The children were reaped by trellis up before it exited.
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after trellis up exited (kill: %v)", pid, err)
		}
	}
	if _, err := os.Stat(up.statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left behind: %v", err)
	}
}

func TestSupervision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	outbound := freeAddr(t)
	up, _ := startUp(t, render(t, echoV1, echoData(outbound, "v1")))
	st := up.waitState(ctx, t, 2)
	c := proxyClient(outbound)
	serving := func() error {
		got, err := versions(ctx, c, "http://echo:8080/", 1)
		if err == nil && got["v1"] != 1 {
			err = fmt.Errorf("versions %v", got)
		}
		return err
	}
	eventually(ctx, t, "echo v1", serving)

	// waitRestart waits for the state to show a new pid for the process pid picks.
	waitRestart := func(what string, pick func(state) int) {
		t.Helper()
		old := pick(st)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatalf("killing the %s (%d): %v", what, old, err)
		}
		eventually(ctx, t, "the "+what+" restarted", func() error {
			next, err := up.readState()
			if err != nil {
				return err
			}
			if pid := pick(next); pid == 0 || pid == old {
				return fmt.Errorf("%s pid %d", what, pid)
			}
			st = next
			return nil
		})
	}

	// Without a control plane the sidecars keep serving their last configuration.
	waitRestart("control plane", func(s state) int { return s.ControlPlane.PID })
	if err := serving(); err != nil {
		t.Errorf("while the control plane restarts: %v", err)
	}
	// A restarted sidecar registers with the restarted control plane.
	waitRestart("echo-v1 sidecar", func(s state) int { return s.workload(t, "echo-v1").ProxyPID })
	eventually(ctx, t, "echo v1 through the restarted sidecar", serving)
	// An app that dies is started again.
	waitRestart("echo-v1 app", func(s state) int { return s.workload(t, "echo-v1").PID })
	eventually(ctx, t, "echo v1 from the restarted app", serving)
	if !strings.Contains(up.stderr.String(), "process exited; restarting") {
		t.Errorf("restarts were not logged")
	}
}

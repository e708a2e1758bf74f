package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
)

// The test binary doubles as the trellis binary that Run starts: with fakeEnv set it
// plays `trellis control` (waits to be stopped), `trellis proxy` (serves /ready on its
// admin address) or an app (records its arguments and environment, then waits).
// The real control plane and proxy are exercised by test/e2e.
const fakeEnv = "TRELLIS_LOCAL_TEST_FAKE"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		fakeMain(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

func fakeMain(args []string) {
	switch args[0] {
	case "control":
		// Write the CA files that up waits for before starting the sidecars.
		dir := args[slices.Index(args, "--data-dir")+1]
		os.MkdirAll(filepath.Join(dir, "ca"), 0o700)
		os.WriteFile(filepath.Join(dir, "join-token"), []byte("token\n"), 0o600)
		os.WriteFile(filepath.Join(dir, "ca", "roots.pem"), nil, 0o600)
		select {}
	case "proxy":
		b, err := bootstrap.Load(args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/ready", func(http.ResponseWriter, *http.Request) {})
		fmt.Println("fake proxy serving admin on", b.Admin)
		fmt.Fprintln(os.Stderr, http.ListenAndServe(b.Admin, mux))
		os.Exit(1)
	case "app":
		rec := appRecord{Args: args[2:], Env: map[string]string{}}
		for _, k := range []string{"PORT", "HTTP_PROXY", "TRELLIS_OUTBOUND", "GREETING"} {
			rec.Env[k] = os.Getenv(k)
		}
		data, _ := json.Marshal(rec)
		if err := os.WriteFile(args[1], data, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		select {}
	}
	os.Exit(3)
}

type appRecord struct {
	Args []string
	Env  map[string]string
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func workloadDoc(name, outDir string) string {
	return fmt.Sprintf(`---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: %[1]s}
spec:
  service: %[1]s
  ports: [{name: http, port: 8080}]
  env: {GREETING: "hello $(PORT)"}
  command: ["$(TRELLIS_BINARY)", "app", "%[2]s/%[1]s.json", "$(PORT)", "$$(PORT)", "$(UNSET)"]
`, name, outDir)
}

// poll calls cond until it returns true or ctx is done.
func poll(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func readState(path string) (State, bool) {
	var st State
	data, err := os.ReadFile(path)
	if err != nil {
		return st, false
	}
	return st, json.Unmarshal(data, &st) == nil
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func TestRun(t *testing.T) {
	t.Setenv(fakeEnv, "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mesh := filepath.Join(dir, "mesh.yaml")
	statePath := filepath.Join(dir, "state.json")
	if err := os.WriteFile(mesh, []byte(workloadDoc("a", dir)+workloadDoc("b", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var logs, out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Config{
			Files: []string{mesh}, StatePath: statePath, XDSAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"),
			Binary: exe, AppGrace: 2 * time.Second,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)), Stdout: &out, Stderr: &out,
		})
	}()
	defer func() {
		if t.Failed() {
			t.Logf("logs:\n%s\noutput:\n%s", logs.String(), out.String())
		}
	}()

	var st State
	poll(ctx, t, "the state file", func() bool {
		var ok bool
		st, ok = readState(statePath)
		return ok && len(st.Workloads) == 2 && st.Workloads[0].PID != 0 && st.Workloads[1].PID != 0
	})
	if st.ControlPlane.PID == 0 || !strings.HasPrefix(st.ControlPlane.XDS, "127.0.0.1:") || strings.HasSuffix(st.ControlPlane.XDS, ":0") {
		t.Errorf("control plane state: %+v", st.ControlPlane)
	}
	a := st.Workloads[0]
	if a.Name != "a" || a.Namespace != "default" || len(a.App) != 1 || a.InboundPorts["http"] != a.Inbound {
		t.Errorf("workload a state: %+v", a)
	}

	// The app got its port, its proxy and its expanded command line.
	var rec appRecord
	poll(ctx, t, "the app's record", func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "a.json"))
		return err == nil && json.Unmarshal(data, &rec) == nil
	})
	port := strings.TrimPrefix(a.App[0], "127.0.0.1:")
	wantArgs := []string{port, "$(PORT)", "$(UNSET)"}
	if strings.Join(rec.Args, " ") != strings.Join(wantArgs, " ") {
		t.Errorf("app args = %q, want %q", rec.Args, wantArgs)
	}
	wantEnv := map[string]string{"PORT": port, "HTTP_PROXY": "http://" + a.Outbound, "TRELLIS_OUTBOUND": a.Outbound, "GREETING": "hello " + port}
	for k, v := range wantEnv {
		if rec.Env[k] != v {
			t.Errorf("app env %s = %q, want %q", k, rec.Env[k], v)
		}
	}
	if !strings.Contains(out.String(), "[a/proxy] fake proxy serving admin on "+a.Admin) {
		t.Errorf("proxy output is not prefixed with [a/proxy]:\n%s", out.String())
	}

	// A sidecar that dies is restarted, on the same addresses.
	if err := syscall.Kill(a.ProxyPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the restarted sidecar in the state", func() bool {
		next, ok := readState(statePath)
		return ok && next.Workloads[0].ProxyPID != 0 && next.Workloads[0].ProxyPID != a.ProxyPID && next.Workloads[0].Admin == a.Admin
	})

	// An invalid edit is reported with file and line, and changes nothing.
	before, _ := readState(statePath)
	if err := os.WriteFile(mesh, []byte(workloadDoc("a", dir)+"---\nkind: Nope\napiVersion: v9\nmetadata: {name: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the invalid edit to be reported", func() bool {
		return strings.Contains(logs.String(), "mesh.yaml:")
	})
	after, _ := readState(statePath)
	if len(after.Workloads) != 2 || after.Workloads[1].PID != before.Workloads[1].PID {
		t.Errorf("an invalid edit changed the mesh: before %+v, after %+v", before, after)
	}

	// A valid edit removes b, starts c and keeps a as it was.
	if err := os.WriteFile(mesh, []byte(workloadDoc("a", dir)+workloadDoc("c", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "b replaced by c", func() bool {
		next, ok := readState(statePath)
		return ok && len(next.Workloads) == 2 && next.Workloads[1].Name == "c" && next.Workloads[1].PID != 0
	})
	final, _ := readState(statePath)
	if final.Workloads[0].PID != before.Workloads[0].PID {
		t.Errorf("unchanged workload a was restarted")
	}
	for _, pid := range []int{before.Workloads[1].PID, before.Workloads[1].ProxyPID} {
		if alive(pid) {
			t.Errorf("process %d of removed workload b still runs", pid)
		}
	}

	// Stopping stops everything and removes the state file.
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after cancel")
	}
	pids := []int{final.ControlPlane.PID}
	for _, w := range final.Workloads {
		pids = append(pids, w.PID, w.ProxyPID)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d still runs after Run returned", pid)
		}
	}
	if _, err := os.Stat(statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left behind: %v", err)
	}
}

func TestRunInvalidFile(t *testing.T) {
	dir := t.TempDir()
	mesh := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(mesh, []byte("apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: a}\nspec:\n  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, Config{Files: []string{mesh}, Binary: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "mesh.yaml:5") {
		t.Errorf("Run on an invalid file: %v, want an error naming mesh.yaml:5", err)
	}
}

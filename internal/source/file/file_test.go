package file

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/store"
)

// logRecorder is a slog.Handler that keeps the records, as "LEVEL message k=v ...".
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	return nil
}

// take returns the lines logged since the last take that start with level.
func (r *logRecorder) take(level string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.HasPrefix(l, level+" ") {
			out = append(out, l)
		}
	}
	r.lines = nil
	return out
}

func workload(name string, port int) string {
	return fmt.Sprintf("apiVersion: trellis.dev/v1alpha1\nkind: Workload\nmetadata: {name: %s}\nspec:\n  ports: [{port: %d}]\n", name, port)
}

// writeFile writes data to path as an editor does: a temporary file renamed over it.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// harness runs a Source over paths until the test ends.
type harness struct {
	src   *Source
	store *store.Store
	logs  *logRecorder
	ctx   context.Context

	mu         sync.Mutex
	lastReload time.Time // when the last finished reload started
}

// waitReload waits until the source has read its files again after since.
func (h *harness) waitReload(t *testing.T, since time.Time) {
	t.Helper()
	h.waitFor(t, "a reload", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.lastReload.After(since)
	})
}

func start(t *testing.T, paths ...string) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	h := &harness{store: store.New(), logs: &logRecorder{}, ctx: ctx}
	src, err := New(Config{Paths: paths, Store: h.store, Logger: slog.New(h.logs)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.src = src
	src.afterReload = func(started time.Time) {
		h.mu.Lock()
		h.lastReload = started
		h.mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-src.Synced():
	case <-ctx.Done():
		t.Fatal("not synced")
	}
	return h
}

// objects lists the snapshot's objects as "Kind ns/name@file:line".
func (h *harness) objects() []string {
	var out []string
	for _, r := range h.store.Snapshot().Config.Objects() {
		out = append(out, fmt.Sprintf("%s@%s", r, r.Pos))
	}
	return out
}

func (h *harness) errors() []string {
	var out []string
	for _, e := range h.src.Errors() {
		out = append(out, e.Error())
	}
	return out
}

// waitFor polls cond until it holds or the test's deadline passes.
func (h *harness) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-h.ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestInitialLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	missing := filepath.Join(dir, "missing.yaml")
	writeFile(t, good, workload("a", 80))
	writeFile(t, bad, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n")

	h := start(t, good, bad, missing, good)

	if diff := cmp.Diff([]string{"Workload default/a@" + good + ":1"}, h.objects()); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	wantErrs := []string{
		bad + ":4: Service default/s: spec.selector: required: selector-less Services are not supported in local mode (a Service's endpoints are the Workloads its selector matches)",
		bad + ":4: Service default/s: spec.ports: required: a Service needs at least one port",
		missing + ": reading file: no such file or directory",
	}
	if diff := cmp.Diff(wantErrs, h.errors()); diff != "" {
		t.Errorf("Errors (-want +got):\n%s", diff)
	}
	warns := h.logs.take("WARN")
	if len(warns) != 3 {
		t.Fatalf("logged %d warnings, want one per problem (3):\n%s", len(warns), strings.Join(warns, "\n"))
	}
	want := "WARN config file rejected file=" + bad + " line=4 resource=Service default/s field=spec.ports reason=required: a Service needs at least one port applied=nothing (no valid version yet)"
	if !slices.Contains(warns, want) {
		t.Errorf("warnings do not contain %q:\n%s", want, strings.Join(warns, "\n"))
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	mesh := filepath.Join(dir, "mesh.yaml")
	writeFile(t, mesh, workload("a", 80))
	h := start(t, mesh)
	changes, unsubscribe := h.store.Subscribe()
	defer unsubscribe()
	waitChange := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-h.ctx.Done():
			t.Fatalf("timed out waiting for the store to change: %s", what)
		}
	}
	version := h.store.Snapshot().Version
	if version != 1 {
		t.Fatalf("version after the first load = %d, want 1", version)
	}
	h.logs.take("")

	// An edit that breaks the file: reported, store unchanged.
	writeFile(t, mesh, "# broken\n"+workload("a", 80)+"---\n"+workload("b", 0)+"  servce: x\n")
	h.waitFor(t, "the broken file to be reported", func() bool { return len(h.src.Errors()) > 0 })
	wantErrs := []string{
		mesh + `:13: Workload default/b: spec.servce: unknown field (did you mean "service"?)`,
	}
	if diff := cmp.Diff(wantErrs, h.errors()); diff != "" {
		t.Errorf("Errors (-want +got):\n%s", diff)
	}
	if got := h.store.Snapshot().Version; got != version {
		t.Errorf("version after a broken edit = %d, want %d (unchanged)", got, version)
	}
	if warns := h.logs.take("WARN"); len(warns) != 1 || !strings.Contains(warns[0], "line=13") || !strings.Contains(warns[0], "applied=its last good version") {
		t.Errorf("warnings = %q, want one for line 13 keeping the last good version", warns)
	}

	// Rewriting the broken file without changing it reports nothing new.
	writeFile(t, mesh, "# broken\n"+workload("a", 80)+"---\n"+workload("b", 0)+"  servce: x\n")
	h.waitReload(t, time.Now())
	if warns := h.logs.take("WARN"); len(warns) != 0 {
		t.Errorf("warnings for an unchanged broken file: %q", warns)
	}

	// An edit that fixes it, written in place: applied, problems cleared.
	if err := os.WriteFile(mesh, []byte(workload("a", 80)+"---\n"+workload("b", 81)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitChange("fixed file")
	if diff := cmp.Diff([]string{"Workload default/a@" + mesh + ":1", "Workload default/b@" + mesh + ":7"}, h.objects()); diff != "" {
		t.Errorf("objects after the fix (-want +got):\n%s", diff)
	}
	if errs := h.errors(); len(errs) != 0 {
		t.Errorf("Errors after the fix = %q, want none", errs)
	}

	// Deleting the file withdraws its config.
	if err := os.Remove(mesh); err != nil {
		t.Fatal(err)
	}
	waitChange("deleted file")
	if objs := h.objects(); len(objs) != 0 {
		t.Errorf("objects after deleting the file = %q, want none", objs)
	}

	// Creating it again loads it again.
	writeFile(t, mesh, workload("c", 80))
	waitChange("recreated file")
	if diff := cmp.Diff([]string{"Workload default/c@" + mesh + ":1"}, h.objects()); diff != "" {
		t.Errorf("objects after recreating the file (-want +got):\n%s", diff)
	}
}

func TestMissingFileAppears(t *testing.T) {
	dir := t.TempDir()
	mesh := filepath.Join(dir, "later.yaml")
	h := start(t, mesh)
	if len(h.src.Errors()) != 1 {
		t.Fatalf("Errors = %q, want the missing file", h.errors())
	}
	changes, unsubscribe := h.store.Subscribe()
	defer unsubscribe()
	// An unrelated file in the directory: the file is looked at again, but its problem
	// is not reported again.
	h.logs.take("")
	writeFile(t, filepath.Join(dir, "other.txt"), "x")
	h.waitReload(t, time.Now())
	if warns := h.logs.take("WARN"); len(warns) != 0 {
		t.Errorf("warnings = %q, want the missing file reported only once", warns)
	}
	writeFile(t, mesh, workload("a", 80))
	select {
	case <-changes:
	case <-h.ctx.Done():
		t.Fatal("the file that appeared was not loaded")
	}
	if errs := h.errors(); len(errs) != 0 {
		t.Errorf("Errors = %q, want none", errs)
	}
}

func TestNewAndRun(t *testing.T) {
	if _, err := New(Config{Store: store.New()}); err == nil {
		t.Error("New without paths: no error")
	}
	if _, err := New(Config{Paths: []string{"x.yaml"}}); err == nil {
		t.Error("New without a store: no error")
	}
	h := start(t, filepath.Join(t.TempDir(), "m.yaml"))
	if err := h.src.Run(h.ctx); err == nil {
		t.Error("a second Run: no error")
	}

	src, err := New(Config{Paths: []string{filepath.Join(t.TempDir(), "no", "such", "dir", "m.yaml")}, Store: store.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.Run(ctx); err == nil || !strings.Contains(err.Error(), "watching config directory") {
		t.Errorf("Run in a missing directory = %v, want a watching error", err)
	}
}

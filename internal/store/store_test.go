package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/config"
)

// workloads is a Set of Workloads in namespace default, each defined at file:line 1.
func workloads(file string, names ...string) *config.Set {
	set := &config.Set{}
	for _, n := range names {
		set.Workloads = append(set.Workloads, config.Workload{
			Pos:      config.Position{File: file, Line: 1},
			Workload: &v1alpha1.Workload{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: n}},
		})
	}
	return set
}

// state is what a test checks of a snapshot: its version, objects and errors.
type state struct {
	Version uint64
	Objects []string
	Errors  []string
}

func stateOf(s Snapshot) state {
	st := state{Version: s.Version}
	for _, r := range s.Config.Objects() {
		st.Objects = append(st.Objects, fmt.Sprintf("%s@%s", r, r.Pos))
	}
	for _, e := range s.Errors {
		st.Errors = append(st.Errors, e.Error())
	}
	return st
}

func TestStore(t *testing.T) {
	type step struct {
		replace string      // source to replace
		set     *config.Set // with this
		remove  string      // or source to remove
		want    state
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "replace, identical replace, remove",
			steps: []step{
				{replace: "a", set: workloads("a", "x"), want: state{Version: 1, Objects: []string{"Workload default/x@a:1"}}},
				{replace: "a", set: workloads("a", "x"), want: state{Version: 1, Objects: []string{"Workload default/x@a:1"}}},
				{replace: "a", set: workloads("a", "x", "y"), want: state{Version: 2, Objects: []string{"Workload default/x@a:1", "Workload default/y@a:1"}}},
				{remove: "nope", want: state{Version: 2, Objects: []string{"Workload default/x@a:1", "Workload default/y@a:1"}}},
				{remove: "a", want: state{Version: 3}},
				{remove: "a", want: state{Version: 3}},
			},
		},
		{
			name: "an empty source changes nothing",
			steps: []step{
				{replace: "a", set: nil, want: state{Version: 0}},
				{replace: "b", set: &config.Set{}, want: state{Version: 0}},
			},
		},
		{
			name: "sources merge sorted",
			steps: []step{
				{replace: "b", set: workloads("b", "z"), want: state{Version: 1, Objects: []string{"Workload default/z@b:1"}}},
				{replace: "a", set: workloads("a", "m"), want: state{Version: 2, Objects: []string{"Workload default/m@a:1", "Workload default/z@b:1"}}},
			},
		},
		{
			name: "conflicts keep the earlier source and are reported",
			steps: []step{
				{replace: "b", set: workloads("b", "x"), want: state{Version: 1, Objects: []string{"Workload default/x@b:1"}}},
				{replace: "a", set: workloads("a", "x", "y"), want: state{
					Version: 2,
					Objects: []string{"Workload default/x@b:1", "Workload default/y@a:1"},
					Errors:  []string{"a:1: Workload default/x: defined twice: here and at b:1 (the one at b:1 is used)"},
				}},
				{replace: "b", set: workloads("b", "x", "q"), want: state{
					Version: 3,
					Objects: []string{"Workload default/q@b:1", "Workload default/x@b:1", "Workload default/y@a:1"},
					Errors:  []string{"a:1: Workload default/x: defined twice: here and at b:1 (the one at b:1 is used)"},
				}},
				{remove: "b", want: state{Version: 4, Objects: []string{"Workload default/x@a:1", "Workload default/y@a:1"}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			for i, st := range tt.steps {
				if st.remove != "" {
					s.Remove(st.remove)
				} else {
					s.Replace(st.replace, st.set)
				}
				if diff := cmp.Diff(st.want, stateOf(s.Snapshot())); diff != "" {
					t.Fatalf("step %d: snapshot (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

func TestSubscribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := New()
	ch, unsubscribe := s.Subscribe()
	other, unsubscribeOther := s.Subscribe()
	defer unsubscribeOther()

	// Two changes while nobody reads: one pending signal, and the newest snapshot.
	s.Replace("a", workloads("a", "x"))
	s.Replace("a", workloads("a", "y"))
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("no signal after a change")
	}
	if got := s.Snapshot().Version; got != 2 {
		t.Errorf("version = %d, want 2", got)
	}
	select {
	case <-ch:
		t.Fatal("a second signal for coalesced changes")
	default:
	}

	// No change, no signal.
	s.Replace("a", workloads("a", "y"))
	select {
	case <-ch:
		t.Fatal("a signal without a change")
	default:
	}

	// After unsubscribing, no signals; other subscribers still get theirs.
	unsubscribe()
	unsubscribe() // idempotent
	s.Remove("a")
	select {
	case <-ch:
		t.Fatal("a signal after unsubscribing")
	default:
	}
	select {
	case <-other:
	case <-ctx.Done():
		t.Fatal("the other subscriber got no signal")
	}
}

// TestConcurrent is for the race detector: writers and readers at once.
func TestConcurrent(t *testing.T) {
	s := New()
	ch, unsubscribe := s.Subscribe()
	defer unsubscribe()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			src := fmt.Sprint("source", w)
			for i := range 50 {
				s.Replace(src, workloads(src, fmt.Sprint("w", i%7)))
				if i%10 == 0 {
					s.Remove(src)
				}
			}
		})
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-ch:
				snap := s.Snapshot()
				_ = snap.Config.Objects()
			case <-done:
				return
			}
		}
	})
	wg.Wait()
	close(done)
	readers.Wait()
	final := s.Snapshot()
	// Every source ends holding w0 (49 % 7): one is kept, three conflict.
	if got, gotErrs := len(final.Config.Workloads), len(final.Errors); got != 1 || gotErrs != 3 {
		t.Errorf("final snapshot has %d workloads and %d errors, want 1 and 3", got, gotErrs)
	}
}

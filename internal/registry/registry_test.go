package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
)

func inst(node, workload string) Instance {
	return Instance{NodeID: node, Metadata: bootstrap.Metadata{Workload: workload, Namespace: "default"}}
}

func nodes(r *Registry) []string {
	var out []string
	for _, i := range r.Instances() {
		out = append(out, i.NodeID+"="+i.Metadata.Workload)
	}
	return out
}

// notified reports whether ch holds a notification, and drains it.
func notified(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestRegistry(t *testing.T) {
	type step struct {
		register   *Stream
		inst       Instance
		deregister *Stream
		wantNodes  []string
		wantNotify bool
	}
	s1 := &Stream{Protocol: SotW, ID: 1}
	s2 := &Stream{Protocol: SotW, ID: 2}
	d1 := &Stream{Protocol: Delta, ID: 1}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "register and deregister",
			steps: []step{
				{register: s1, inst: inst("a.default", "a"), wantNodes: []string{"a.default=a"}, wantNotify: true},
				{register: s2, inst: inst("b.default", "b"), wantNodes: []string{"a.default=a", "b.default=b"}, wantNotify: true},
				{deregister: s1, wantNodes: []string{"b.default=b"}, wantNotify: true},
				{deregister: s2, wantNodes: nil, wantNotify: true},
			},
		},
		{
			name: "reconnect before the old stream closes keeps the node",
			steps: []step{
				{register: s1, inst: inst("a.default", "a"), wantNodes: []string{"a.default=a"}, wantNotify: true},
				{register: s2, inst: inst("a.default", "a"), wantNodes: []string{"a.default=a"}, wantNotify: false},
				{deregister: s1, wantNodes: []string{"a.default=a"}, wantNotify: false},
				{deregister: s2, wantNodes: nil, wantNotify: true},
			},
		},
		{
			name: "the newest stream's metadata wins",
			steps: []step{
				{register: s1, inst: inst("a.default", "old"), wantNodes: []string{"a.default=old"}, wantNotify: true},
				{register: s2, inst: inst("a.default", "new"), wantNodes: []string{"a.default=new"}, wantNotify: true},
				{deregister: s2, wantNodes: []string{"a.default=old"}, wantNotify: true},
			},
		},
		{
			name: "SotW and Delta stream IDs do not collide",
			steps: []step{
				{register: s1, inst: inst("a.default", "a"), wantNodes: []string{"a.default=a"}, wantNotify: true},
				{register: d1, inst: inst("b.default", "b"), wantNodes: []string{"a.default=a", "b.default=b"}, wantNotify: true},
				{deregister: d1, wantNodes: []string{"a.default=a"}, wantNotify: true},
			},
		},
		{
			name: "unknown stream deregisters quietly",
			steps: []step{
				{deregister: s1, wantNodes: nil, wantNotify: false},
			},
		},
		{
			name: "a repeated request on a stream changes nothing",
			steps: []step{
				{register: s1, inst: inst("a.default", "a"), wantNodes: []string{"a.default=a"}, wantNotify: true},
				{register: s1, inst: inst("a.default", "a"), wantNodes: []string{"a.default=a"}, wantNotify: false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New()
			ch, cancel := r.Subscribe()
			defer cancel()
			for i, s := range tt.steps {
				if s.register != nil {
					r.Register(*s.register, s.inst)
				}
				if s.deregister != nil {
					r.Deregister(*s.deregister)
				}
				if diff := cmp.Diff(s.wantNodes, nodes(r)); diff != "" {
					t.Errorf("step %d: instances (-want +got):\n%s", i, diff)
				}
				if got := notified(ch); got != s.wantNotify {
					t.Errorf("step %d: notified = %v, want %v", i, got, s.wantNotify)
				}
				if got, want := r.Len(), len(s.wantNodes); got != want {
					t.Errorf("step %d: Len() = %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestUnsubscribe(t *testing.T) {
	r := New()
	ch, cancel := r.Subscribe()
	cancel()
	r.Register(Stream{Protocol: SotW, ID: 1}, inst("a.default", "a"))
	if notified(ch) {
		t.Error("notified after unsubscribing")
	}
	if _, ok := r.Lookup("a.default"); !ok {
		t.Error("Lookup(a.default) found nothing")
	}
}

func TestStartingUntilServing(t *testing.T) {
	r := New()
	ch, stop := r.Subscribe()
	defer stop()
	s := Stream{Protocol: SotW, ID: 1}
	r.Register(s, Instance{NodeID: "a.default", Starting: true})
	<-ch
	if got := r.Instances(); len(got) != 1 || !got[0].Starting {
		t.Fatalf("after Register: %+v, want one starting instance", got)
	}
	if !r.MarkServing(s) {
		t.Fatal("MarkServing of a starting instance reported false")
	}
	select {
	case <-ch:
	default:
		t.Error("MarkServing did not notify the subscribers")
	}
	if got := r.Instances(); len(got) != 1 || got[0].Starting {
		t.Errorf("after MarkServing: %+v, want one serving instance", got)
	}
	if r.MarkServing(s) || r.MarkServing(Stream{Protocol: SotW, ID: 2}) {
		t.Error("MarkServing of a serving or unknown stream reported true")
	}
}

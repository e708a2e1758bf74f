package leader_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/kube/leader"
)

// candidate is one Elector run by the test, and what its Lead saw.
type candidate struct {
	elector *leader.Elector
	stop    context.CancelFunc
	done    chan error

	mu    sync.Mutex
	terms int
	ended int
}

func (c *candidate) counts() (terms, ended int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.terms, c.ended
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestElector(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster.CreateNamespace(t, "trellis-system", nil)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	start := func(id string) *candidate {
		c := &candidate{done: make(chan error, 1)}
		var err error
		c.elector, err = leader.New(leader.Config{
			Client: cluster.Client, Namespace: "trellis-system", Name: "trellis", Identity: id,
			LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
			Logger: log,
			Lead: func(term context.Context) {
				c.mu.Lock()
				c.terms++
				c.mu.Unlock()
				<-term.Done()
				c.mu.Lock()
				c.ended++
				c.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		c.stop = stop
		go func() { c.done <- c.elector.Run(runCtx) }()
		t.Cleanup(func() { stop() })
		return c
	}
	a := start("a")
	waitFor(t, "a to lead", a.elector.IsLeader)
	b := start("b")
	waitFor(t, "b to see a lead", func() bool { return b.elector.Leader() == "a" })
	if b.elector.IsLeader() {
		t.Fatal("both lead")
	}
	if terms, _ := b.counts(); terms != 0 {
		t.Fatalf("b ran Lead %d times while a led", terms)
	}

	// Stopping a releases the lease: b takes over well before it would expire, and
	// a's term has ended by the time Run returns.
	a.stop()
	stopped := time.Now()
	if err := <-a.done; err != nil {
		t.Fatalf("a: Run: %v", err)
	}
	if terms, ended := a.counts(); terms != 1 || ended != 1 {
		t.Errorf("a: %d terms, %d ended; want 1, 1", terms, ended)
	}
	waitFor(t, "b to lead", b.elector.IsLeader)
	if took := time.Since(stopped); took > 2*time.Second {
		t.Errorf("failover took %v, more than the lease duration: the lease was not released", took)
	}
	waitFor(t, "b's term", func() bool { terms, _ := b.counts(); return terms == 1 })
	b.stop()
	if err := <-b.done; err != nil {
		t.Fatalf("b: Run: %v", err)
	}
	if terms, ended := b.counts(); terms != 1 || ended != 1 {
		t.Errorf("b: %d terms, %d ended; want 1, 1", terms, ended)
	}
}

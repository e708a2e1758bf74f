package casecret_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/kube/casecret"
	"trellis.dev/trellis/internal/kube/kubetest"
)

func TestStorage(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster.CreateNamespace(t, "trellis-system", nil)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var leading atomic.Bool
	storage := func() *casecret.Storage {
		s, err := casecret.New(casecret.Config{Client: cluster.Client, Namespace: "trellis-system", MayCreate: leading.Load})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	newCA := func(s *casecret.Storage) (*ca.CA, error) {
		return ca.New(ca.Config{Storage: s, Logger: log})
	}

	// A replica that does not lead waits for the Secret.
	follower := storage()
	if _, err := newCA(follower); !errors.Is(err, casecret.ErrNotCreated) {
		t.Fatalf("New without a Secret, not leading: %v, want ErrNotCreated", err)
	}
	if _, err := cluster.Client.CoreV1().Secrets("trellis-system").Get(ctx, casecret.DefaultName, metav1.GetOptions{}); err == nil {
		t.Fatal("a replica that does not lead created the Secret")
	}
	// The leader creates it, once; the follower then loads the same root.
	leading.Store(true)
	leaderStorage := storage()
	first, err := newCA(leaderStorage)
	if err != nil {
		t.Fatalf("New as the leader: %v", err)
	}
	second, err := newCA(follower)
	if err != nil {
		t.Fatalf("New once the Secret exists: %v", err)
	}
	if string(first.TrustBundlePEM()) != string(second.TrustBundlePEM()) {
		t.Fatal("the replicas trust different bundles")
	}
	// Two replicas racing to create: the loser gets ErrConflict, and loads on retry.
	racer := storage()
	if err := cluster.Client.CoreV1().Secrets("trellis-system").Delete(ctx, casecret.DefaultName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := racer.Load(); err != nil {
		t.Fatal(err)
	}
	winner, err := newCA(storage())
	if err != nil {
		t.Fatal(err)
	}
	if err := racer.Save(ca.StoredRoot{Cert: []byte("x"), Key: []byte("y")}); !errors.Is(err, casecret.ErrConflict) {
		t.Fatalf("creating a Secret that was created meanwhile: %v, want ErrConflict", err)
	}

	// A rotation by one replica reaches the other through Watch and Reload.
	watcher := storage()
	follow, err := newCA(watcher)
	if err != nil {
		t.Fatal(err)
	}
	reloaded := make(chan struct{}, 1)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.Watch(wctx, 50*time.Millisecond, func() {
			if changed, err := follow.Reload(); err == nil && changed {
				reloaded <- struct{}{}
			}
		}, log)
	}()
	defer func() { stop(); <-done }()
	if err := winner.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	select {
	case <-reloaded:
	case <-ctx.Done():
		t.Fatal("the rotation was not noticed")
	}
	if len(follow.TrustBundle()) != 2 || string(follow.TrustBundlePEM()) != string(winner.TrustBundlePEM()) {
		t.Errorf("after the rotation the follower trusts %d roots, not the winner's bundle", len(follow.TrustBundle()))
	}
	// A replica that missed the rotation cannot overwrite it.
	if err := second.Rotate(); !errors.Is(err, casecret.ErrConflict) {
		t.Errorf("a rotation based on a stale Secret: %v, want ErrConflict", err)
	}
}

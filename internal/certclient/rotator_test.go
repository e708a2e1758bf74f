package certclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
)

// runRotator runs r until the test ends.
func runRotator(t *testing.T, r *certclient.Rotator) {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// collect returns OnUpdate and a channel of what it is given.
func collect() (func(*certclient.Certificate), <-chan *certclient.Certificate) {
	ch := make(chan *certclient.Certificate, 100)
	return func(c *certclient.Certificate) { ch <- c }, ch
}

func next(t *testing.T, ch <-chan *certclient.Certificate) *certclient.Certificate {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(15 * time.Second):
		t.Fatal("no certificate within 15s")
		return nil
	}
}

func TestRotatorRenews(t *testing.T) {
	srv := startCA(t)
	id := identity.New("default", "reviews")
	tests := []struct {
		name       string
		ttl        time.Duration
		renewEvery time.Duration
	}{
		{name: "at half life", ttl: 2 * time.Second},
		{name: "every few hundred milliseconds", ttl: time.Hour, renewEvery: 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := certclient.New(certclient.Config{Conn: srv.conn, Identity: id, Token: srv.token, TTL: tt.ttl})
			if err != nil {
				t.Fatal(err)
			}
			onUpdate, updates := collect()
			r, err := certclient.NewRotator(certclient.RotatorConfig{
				Fetcher: client, RenewEvery: tt.renewEvery, OnUpdate: onUpdate, Logger: testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
				t.Error("GetCertificate before the first certificate succeeded")
			}
			runRotator(t, r)
			start := time.Now()
			seen := map[string]bool{}
			for range 3 {
				c := next(t, updates)
				serial := c.TLS.Leaf.SerialNumber.String()
				if seen[serial] {
					t.Fatalf("serial %s delivered twice", serial)
				}
				seen[serial] = true
			}
			select {
			case <-r.Ready():
			default:
				t.Error("Ready not closed after certificates arrived")
			}
			// Three certificates: the first at once, two renewals at half life (1s each)
			// or every 300ms; well before the 2s lifetime would have run out twice.
			if elapsed := time.Since(start); elapsed > 4*time.Second {
				t.Errorf("three certificates took %v", elapsed)
			}
			got, err := r.GetClientCertificate(&tls.CertificateRequestInfo{})
			if err != nil {
				t.Fatalf("GetClientCertificate: %v", err)
			}
			if got != r.Current().TLS {
				t.Error("GetClientCertificate is not the current certificate")
			}
		})
	}
}

// scripted is a Fetcher that plays a script of results.
type scripted struct {
	mu      sync.Mutex
	results []error // nil: success
	certs   []*certclient.Certificate
	onFail  func()
	calls   int
}

func (s *scripted) Fetch(ctx context.Context) (*certclient.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.calls
	s.calls++
	if i >= len(s.results) {
		s.mu.Unlock()
		<-ctx.Done() // the script is over: hang until stopped
		s.mu.Lock()
		return nil, ctx.Err()
	}
	if err := s.results[i]; err != nil {
		s.onFail()
		return nil, err
	}
	c := &certclient.Certificate{
		TLS:      &tls.Certificate{},
		Received: time.Now(),
		NotAfter: time.Now().Add(time.Hour),
	}
	s.certs = append(s.certs, c)
	return c, nil
}

func TestRotatorRetriesAndKeepsCurrent(t *testing.T) {
	fail := errors.New("CA unreachable")
	f := &scripted{results: []error{fail, nil, fail, fail, fail, nil}}
	onUpdate, updates := collect()
	r, err := certclient.NewRotator(certclient.RotatorConfig{
		Fetcher: f, RenewEvery: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnUpdate: onUpdate, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	var currentAtFailure []*certclient.Certificate // read by Fetch, under f.mu
	f.onFail = func() { currentAtFailure = append(currentAtFailure, r.Current()) }
	runRotator(t, r)

	first, second := next(t, updates), next(t, updates)
	f.mu.Lock()
	defer f.mu.Unlock()
	if first != f.certs[0] || second != f.certs[1] {
		t.Fatal("updates are not the fetched certificates in order")
	}
	want := []*certclient.Certificate{nil, first, first, first}
	if len(currentAtFailure) != len(want) {
		t.Fatalf("%d failures seen, want %d", len(currentAtFailure), len(want))
	}
	for i := range want {
		if currentAtFailure[i] != want[i] {
			t.Errorf("failure %d: current certificate changed during failed renewals", i)
		}
	}
}

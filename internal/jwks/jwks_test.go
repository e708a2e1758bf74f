package jwks

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	keySetA = `{"keys":[{"kty":"EC","kid":"a"}]}`
	keySetB = `{"keys":[{"kty":"EC","kid":"b"}]}`
)

// served is an httptest server whose answer the test changes.
type served struct {
	mu   sync.Mutex
	body string
	code int
}

func (s *served) set(code int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code, s.body = code, body
}

func (s *served) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.WriteHeader(s.code)
	io.WriteString(w, s.body)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs f until the test ends.
func start(t *testing.T, f *Fetcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitFor polls until Lookup(uri) returns want.
func waitFor(t *testing.T, f *Fetcher, uri, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok := f.Lookup(uri)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup(%s) = %q, %v; want %q", uri, got, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFetchAndRefresh(t *testing.T) {
	srv := &served{}
	srv.set(http.StatusOK, keySetA)
	ts := httptest.NewServer(srv)
	defer ts.Close()

	f := New(Config{AllowPrivate: true, Refresh: 50 * time.Millisecond, Logger: quiet()})
	start(t, f)
	f.Want([]string{ts.URL})
	waitFor(t, f, ts.URL, keySetA)
	select {
	case <-f.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no change signalled after the first fetch")
	}

	// A broken answer keeps the last good key set.
	srv.set(http.StatusOK, `{"keys": "nope"}`)
	srv.set(http.StatusInternalServerError, "")
	srv.set(http.StatusOK, keySetB)
	waitFor(t, f, ts.URL, keySetB)

	f.Want(nil)
	if _, ok := f.Lookup(ts.URL); ok {
		t.Error("a URI no longer wanted is still looked up")
	}
}

func TestKeepsLastGoodOnFailure(t *testing.T) {
	srv := &served{}
	srv.set(http.StatusOK, keySetA)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := New(Config{AllowPrivate: true, Refresh: 20 * time.Millisecond, Logger: quiet()})
	start(t, f)
	f.Want([]string{ts.URL})
	waitFor(t, f, ts.URL, keySetA)
	srv.set(http.StatusOK, "not json")
	// Let several refreshes fail, then check the key set is still there.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got, ok := f.Lookup(ts.URL); !ok || got != keySetA {
			t.Fatalf("after failed refreshes Lookup = %q, %v; want the last good key set", got, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFetchErrors(t *testing.T) {
	srv := &served{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tests := []struct {
		name         string
		allowPrivate bool
		uri          string
		code         int
		body         string
		wantErr      string
	}{
		{name: "loopback refused", uri: ts.URL, code: 200, body: keySetA, wantErr: "loopback, link-local and private addresses need --jwks-allow-private"},
		{name: "link-local refused", uri: "http://169.254.169.254/latest", wantErr: "refusing to fetch a key set from 169.254.169.254"},
		{name: "private refused", uri: "http://10.1.2.3/jwks", wantErr: "refusing to fetch a key set from 10.1.2.3"},
		{name: "not http", allowPrivate: true, uri: "file:///etc/passwd", wantErr: "only http and https"},
		{name: "status", allowPrivate: true, uri: ts.URL, code: 404, wantErr: "404 Not Found"},
		{name: "not a key set", allowPrivate: true, uri: ts.URL, code: 200, body: `{"kid": 1}`, wantErr: `no "keys"`},
		{name: "key without kty", allowPrivate: true, uri: ts.URL, code: 200, body: `{"keys":[{"kid":"x"}]}`, wantErr: `keys[0] has no "kty"`},
		{name: "too big", allowPrivate: true, uri: ts.URL, code: 200, body: strings.Repeat(" ", MaxBodyBytes+1), wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.set(tt.code, tt.body)
			f := New(Config{AllowPrivate: tt.allowPrivate, Timeout: 2 * time.Second, Logger: quiet()})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := f.fetch(ctx, tt.uri)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("fetch(%s) error = %v, want one containing %q", tt.uri, err, tt.wantErr)
			}
		})
	}
}

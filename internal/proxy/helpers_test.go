package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/serverlimits"
)

// testLogger logs to stderr when TRELLIS_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("TRELLIS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// freeAddr returns a loopback address that was free a moment ago, on a loopback IP
// of this process's own (127.x.y.z, not 127.0.0.1): the sidecar binds it later, and
// on 127.0.0.1 another package's test running at the same time could take the port
// in between (the whole 127.0.0.0/8 is loopback on Linux).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(testLoopbackIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testLoopbackIP is the loopback IP of freeAddr's addresses, chosen once per test
// process.
var testLoopbackIP = fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 1+rand.IntN(250))

// startProxy runs a sidecar for node until the test ends.
func startProxy(t *testing.T, node, xds string, delta bool) *Proxy {
	t.Helper()
	return runProxy(t, &bootstrap.Bootstrap{
		Node:  bootstrap.Node{ID: node, Cluster: strings.Split(node, ".")[0], Metadata: bootstrap.Metadata{Workload: node, Namespace: "default"}},
		XDS:   xds,
		Delta: delta,
		Admin: "127.0.0.1:0",
	})
}

// runProxy runs a sidecar with bootstrap b until the test ends.
func runProxy(t *testing.T, b *bootstrap.Bootstrap) *Proxy {
	t.Helper()
	return runProxyLimited(t, b, serverlimits.Limits{})
}

// runProxyLimited is runProxy with the listeners' limits lim.
func runProxyLimited(t *testing.T, b *bootstrap.Bootstrap, lim serverlimits.Limits) *Proxy {
	t.Helper()
	p, err := New(Config{Bootstrap: b, DrainPeriod: 2 * time.Second, Limits: lim, Logger: testLogger().With("node", b.Node.ID)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		// The test's clients are gone: no drain period.
		cancel(SkipDrainPeriod)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("sidecar %s did not stop", b.Node.ID)
		}
	})
	return p
}

// eventually calls f until it succeeds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

// appServer is an HTTP app that says who it is and what it received.
func appServer(t *testing.T, name string, h2c bool) *httptest.Server {
	t.Helper()
	return startApp(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app=%s host=%s uri=%s proto=%s", name, r.Host, r.RequestURI, r.Proto)
	}, h2c)
}

// startApp serves h over plaintext HTTP/1.1, and HTTP/2 without TLS (h2c) too when
// h2c is set, until the test ends.
func startApp(t *testing.T, h http.HandlerFunc, h2c bool) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	if h2c {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
		s.Config.Protocols.SetHTTP1(true)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// tcpEcho is a TCP server that echoes each connection and half-closes after the
// client does.
func tcpEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// get sends a GET through client and returns status and body.
func get(client *http.Client, url, host string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// expect returns an error unless a GET answers code and a body containing want.
func expect(client *http.Client, url, host string, code int, want string) error {
	got, body, err := get(client, url, host)
	if err != nil {
		return err
	}
	if got != code || !strings.Contains(body, want) {
		return fmt.Errorf("GET %s (Host %q) = %d %q, want %d containing %q", url, host, got, body, code, want)
	}
	return nil
}

var errNotYet = errors.New("not yet")

package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

func TestBindFailureIsNACKed(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	xds.Set(t, "n.default", "1",
		xdstest.TCPListener("inbound|9000", busy.Addr().String(), "c"),
		xdstest.StaticCluster("c", false, "127.0.0.1:1"))
	p := startProxy(t, "n.default", xds.Addr, false)
	want := fmt.Sprintf(`listener "inbound|9000": address: binding %s`, busy.Addr())
	eventually(t, 10*time.Second, "NACK of the unbindable listener", func() error {
		for _, r := range xds.Requests() {
			if strings.Contains(r.ErrorDetail, want) {
				return nil
			}
		}
		return fmt.Errorf("no NACK containing %q", want)
	})
	if p.Ready() {
		t.Error("ready without a configuration")
	}
}

func TestDrain(t *testing.T) {
	tests := []struct {
		name   string
		period time.Duration
		stop   error // the cause Run's context is cancelled with
		// accepting: whether a new connection is still served right after the stop.
		accepting bool
	}{
		{name: "SIGTERM: drain period, then stop accepting", period: 1500 * time.Millisecond, stop: errors.New("SIGTERM"), accepting: true},
		{name: "SIGINT: stop accepting at once", period: 30 * time.Second, stop: SkipDrainPeriod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					w.WriteHeader(200)
					w.(http.Flusher).Flush()
					<-release
				}
				io.WriteString(w, "done")
			}))
			defer app.Close()
			defer close(release) // before app.Close if the test fails early
			inbound := freeAddr(t)
			xds := xdstest.Start(t, "127.0.0.1:0", nil)
			xds.Set(t, "app.default", "1",
				xdstest.InlineHTTPListener(names.InboundListener(80), inbound,
					xdstest.RouteConfig("inbound|80", xdstest.VirtualHost("inbound", []string{"*"}, names.InboundCluster(80)))),
				xdstest.StaticCluster(names.InboundCluster(80), false, hostOf(app.URL)))

			p, err := New(Config{
				Bootstrap:   &bootstrap.Bootstrap{Node: bootstrap.Node{ID: "app.default"}, XDS: xds.Addr, Admin: "127.0.0.1:0"},
				DrainPeriod: tt.period,
				Logger:      testLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			eventually(t, 10*time.Second, "ready", func() error {
				if !p.Ready() {
					return errNotYet
				}
				return nil
			})
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			resp, err := c.Get("http://" + inbound + "/slow")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()

			stopped := time.Now()
			cancel(tt.stop)
			eventually(t, time.Second, "not ready while draining", func() error {
				if p.Ready() {
					return errNotYet
				}
				return nil
			})
			if tt.accepting {
				// New connections are served during the drain period, with
				// Connection: close.
				fresh, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}).Get("http://" + inbound + "/")
				if err != nil {
					t.Fatalf("a new request in the drain period: %v; want it served", err)
				}
				body, _ := io.ReadAll(fresh.Body)
				fresh.Body.Close()
				if fresh.StatusCode != 200 || string(body) != "done" || !fresh.Close {
					t.Errorf("in the drain period: %d %q, close %v; want 200 done with Connection: close", fresh.StatusCode, body, fresh.Close)
				}
			}
			eventually(t, tt.period+5*time.Second, "stops accepting", func() error {
				c, err := net.DialTimeout("tcp", inbound, time.Second)
				if err != nil {
					return nil
				}
				c.Close()
				return errNotYet
			})
			refused := time.Since(stopped)
			if tt.accepting && refused < tt.period {
				t.Errorf("stopped accepting %s after the stop, before the drain period of %s ended", refused, tt.period)
			}
			if !tt.accepting && refused > 5*time.Second {
				t.Errorf("stopped accepting %s after the stop, want at once (drain period %s skipped)", refused, tt.period)
			}
			release <- struct{}{}
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != "done" {
				t.Errorf("in-flight response = %q, %v; want done", body, err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after the drain")
			}
		})
	}
}

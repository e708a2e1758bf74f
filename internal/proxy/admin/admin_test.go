package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type fakeState struct{ ready atomic.Bool }

func (f *fakeState) Ready() bool { return f.ready.Load() }
func (f *fakeState) WriteConfigDump(w io.Writer) error {
	_, err := io.WriteString(w, `{"listeners":{}}`)
	return err
}
func (f *fakeState) WriteStats(w io.Writer) error { return errors.New("boom") }

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{name: "ipv4 loopback", addr: "127.0.0.1:15000"},
		{name: "other loopback", addr: "127.0.0.2:15000"},
		{name: "ipv6 loopback", addr: "[::1]:15000"},
		{name: "localhost", addr: "localhost:15000"},
		{name: "any", addr: "0.0.0.0:15000", wantErr: true},
		{name: "empty host", addr: ":15000", wantErr: true},
		{name: "public", addr: "192.0.2.1:15000", wantErr: true},
		{name: "no port", addr: "127.0.0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLoopback(tt.addr)
			if (err != nil) != tt.wantErr {
				t.Errorf("checkLoopback(%q) = %v, wantErr %v", tt.addr, err, tt.wantErr)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	state := &fakeState{}
	s, err := New(Config{Address: "127.0.0.1:0", State: state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	tests := []struct {
		name     string
		ready    bool
		path     string
		wantCode int
		wantBody string
		prefix   bool // wantBody is the body's beginning
	}{
		{name: "not ready", path: "/ready", wantCode: 503, wantBody: "not ready"},
		{name: "ready", ready: true, path: "/ready", wantCode: 200, wantBody: "ready"},
		{name: "config dump", path: "/config_dump", wantCode: 200, wantBody: `{"listeners":{}}`},
		{name: "stats failing", path: "/stats", wantCode: 500, wantBody: "boom"},
		{name: "unknown", path: "/nope", wantCode: 404, wantBody: "404 page not found"},
		{name: "heap profile", path: "/debug/pprof/heap?debug=1", wantCode: 200, wantBody: "heap profile:", prefix: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state.ready.Store(tt.ready)
			code, body := get(tt.path)
			if tt.prefix && strings.HasPrefix(body, tt.wantBody) {
				body = tt.wantBody
			}
			if code != tt.wantCode || body != tt.wantBody {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

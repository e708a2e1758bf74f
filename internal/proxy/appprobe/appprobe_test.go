package appprobe

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
)

func TestHandler(t *testing.T) {
	var gotHost, gotHeader string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotHeader = r.Host, r.Header.Get("X-Probe")
		switch r.URL.Path {
		case "/ready":
			w.WriteHeader(http.StatusOK)
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/slow":
			time.Sleep(1500 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer app.Close()
	tlsApp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer tlsApp.Close()
	port := func(s *httptest.Server) int {
		_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
		n, _ := strconv.Atoi(p)
		return n
	}
	closed := func() int { // a port nobody listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	h := Handler(map[string]bootstrap.AppProbe{
		"/app-health/app/readyz":   {Port: port(app), Path: "/ready", Host: "app.local", Headers: []bootstrap.HTTPHeader{{Name: "X-Probe", Value: "yes"}}},
		"/app-health/app/livez":    {Port: port(app), Path: "broken"},
		"/app-health/app/startupz": {Port: port(app), Path: "/moved"},
		"/app-health/tls/livez":    {Port: port(tlsApp), Path: "/", Scheme: "HTTPS"},
		"/app-health/slow/livez":   {Port: port(app), Path: "/slow", TimeoutSeconds: 1},
		"/app-health/down/livez":   {Port: closed, Path: "/"},
	}, slog.New(slog.DiscardHandler))
	tests := []struct {
		path string
		want int
	}{
		{"/app-health/app/readyz", http.StatusOK},
		{"/app-health/app/livez", http.StatusInternalServerError},
		{"/app-health/app/startupz", http.StatusFound},
		{"/app-health/tls/livez", http.StatusNoContent},
		{"/app-health/slow/livez", http.StatusServiceUnavailable},
		{"/app-health/down/livez", http.StatusServiceUnavailable},
		{"/app-health/other/livez", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d (%s)", rec.Code, tt.want, rec.Body)
			}
			if tt.path == "/app-health/app/readyz" && (gotHost != "app.local" || gotHeader != "yes") {
				t.Errorf("the app saw Host %q and X-Probe %q, want the probe's", gotHost, gotHeader)
			}
		})
	}
}

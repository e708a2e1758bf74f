package forward

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRelay is what relay (the HTTP/1.1 path without the reverse proxy) sends
// upstream and back: unparsable query parameters re-encoded, no User-Agent added,
// hop-by-hop headers removed both ways, "TE: trailers" kept, response headers the
// client's, and the head of a stream sent before its body.
func TestRelay(t *testing.T) {
	release := make(chan struct{})
	app := newBackend(t, "app", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.WriteHeader(http.StatusAccepted)
			w.(http.Flusher).Flush()
			<-release
			fmt.Fprint(w, "end")
			return
		}
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-App", "a")
		_, ua := r.Header["User-Agent"]
		fmt.Fprintf(w, "query=%s ua=%v te=%q secret=%q ka=%q", r.URL.RawQuery, ua, r.Header.Get("Te"), r.Header.Get("X-Secret"), r.Header.Get("Keep-Alive"))
	})
	h := newHarness(t, []*routev3.Route{to("app")}, static("app", []string{app.addr}))
	tests := []struct {
		target string
		header map[string]string
		want   string
	}{
		{"/q?a=1&b=2", nil, `query=a=1&b=2 ua=false te="" secret="" ka=""`},
		{"/q?a=1;b=2&c=%zz&d=3", nil, `query=d=3 ua=false te="" secret="" ka=""`},
		{"/q", map[string]string{"Connection": "X-Secret", "X-Secret": "s", "Keep-Alive": "1", "Te": "trailers, deflate"},
			`query= ua=false te="trailers" secret="" ka=""`},
		{"/q", map[string]string{"Te": "deflate"}, `query= ua=false te="" secret="" ka=""`},
	}
	for _, tt := range tests {
		hdr := map[string]string{"User-Agent": ""}
		for k, v := range tt.header {
			hdr[k] = v
		}
		res := h.do("GET", tt.target, hdr, "")
		if res.code != 200 || res.body != tt.want {
			t.Errorf("GET %s %v: %d %q, want 200 %q", tt.target, tt.header, res.code, res.body, tt.want)
		}
		if res.header.Get("X-App") != "a" || res.header.Get("X-Hop") != "" || res.header.Get("Keep-Alive") != "" {
			t.Errorf("GET %s: response headers %v: want X-App, without X-Hop and Keep-Alive", tt.target, res.header)
		}
	}

	// A stream: its head arrives while the app still holds its body.
	req, _ := http.NewRequest("GET", h.url+"/stream", nil)
	req.Host = "app"
	type answer struct {
		resp *http.Response
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := h.client.Do(req)
		got <- answer{resp, err}
	}()
	select {
	case a := <-got:
		if a.err != nil {
			t.Fatal(a.err)
		}
		close(release)
		line, _ := bufio.NewReader(a.resp.Body).ReadString('\n')
		a.resp.Body.Close()
		if a.resp.StatusCode != http.StatusAccepted || strings.TrimSpace(line) != "end" {
			t.Errorf("stream: %d %q, want 202 \"end\"", a.resp.StatusCode, line)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the stream's head did not arrive before its body")
	}
}

package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// bookshop starts every serving role as an httptest server wired to the others by
// URL, and returns the frontend's URL.
func bookshop(t *testing.T, reviewsVersion string) string {
	t.Helper()
	direct := &http.Client{Timeout: 5 * time.Second}
	start := func(role string, cfg AppConfig) string {
		cfg.Client = direct
		h, err := Handler(role, cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	ratings := start("ratings", AppConfig{})
	details := start("details", AppConfig{})
	reviews := start("reviews", AppConfig{Version: reviewsVersion, Ratings: ratings})
	return start("frontend", AppConfig{Details: details, Reviews: reviews})
}

func TestFrontend(t *testing.T) {
	tests := []struct {
		name        string
		version     string
		wantStars   []int
		wantVersion string
	}{
		{name: "reviews v1 has no stars", version: "v1", wantStars: []int{0, 0}, wantVersion: "v1"},
		{name: "reviews v2 has stars from ratings", version: "v2", wantStars: []int{5, 4}, wantVersion: "v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := bookshop(t, tt.version)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s", resp.Status)
			}
			if got := resp.Header.Get(ReviewsVersionHeader); got != tt.wantVersion {
				t.Errorf("%s = %q, want %q", ReviewsVersionHeader, got, tt.wantVersion)
			}
			var page Page
			if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
				t.Fatal(err)
			}
			if len(page.Errors) > 0 || page.Details == nil || page.Reviews == nil {
				t.Fatalf("incomplete page: %+v", page)
			}
			var stars []int
			for _, r := range page.Reviews.Reviews {
				stars = append(stars, r.Stars)
			}
			if diff := cmp.Diff(tt.wantStars, stars); diff != "" {
				t.Errorf("stars (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFrontendHTMLAndFailures(t *testing.T) {
	direct := &http.Client{Timeout: 2 * time.Second}
	// Backends that do not answer: the frontend reports them rather than failing.
	h, err := Handler("frontend", AppConfig{Client: direct, Details: "http://127.0.0.1:1", Reviews: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept", "text/html")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadGateway {
		t.Errorf("status = %d, want 502 when every backend fails", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{"<html>", "details unavailable", "reviews unavailable"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}

func TestUnknownRole(t *testing.T) {
	if _, err := Handler("nope", AppConfig{}); err == nil {
		t.Error("Handler(nope) succeeded")
	}
}

func TestLoad(t *testing.T) {
	url := bookshop(t, "v2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	lines := make(chan string, 1)
	w := writerFunc(func(b []byte) (int, error) {
		out.Write(b)
		select {
		case lines <- string(b):
		default:
		}
		return len(b), nil
	})
	done := make(chan error, 1)
	go func() {
		done <- Load(ctx, LoadConfig{Target: url + "/", QPS: 50, Interval: 300 * time.Millisecond, Client: &http.Client{Timeout: 2 * time.Second}, Out: w})
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		t.Fatal("no summary line from Load")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"requests in 300ms", "200=", "reviews v2="} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestSummaryLine(t *testing.T) {
	tests := []struct {
		name    string
		results []result
		want    string
	}{
		{name: "nothing", want: "loadgen http://f/: 0 requests in 5s"},
		{
			name:    "codes and versions",
			results: []result{{200, "v1"}, {200, "v2"}, {503, ""}, {0, ""}, {200, "v1"}},
			want:    "loadgen http://f/: 5 requests in 5s: error=1 200=3 503=1; reviews v1=2 v2=1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s summary
			for _, r := range tt.results {
				s.add(r)
			}
			if diff := cmp.Diff(tt.want, s.line("http://f/", 5*time.Second)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

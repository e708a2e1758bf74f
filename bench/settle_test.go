package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestScrapeGauge(t *testing.T) {
	page := "# HELP trellis_startup_pages_released_bytes x\n# TYPE trellis_startup_pages_released_bytes gauge\n" +
		"trellis_startup_pages_released_bytes_other 7\ntrellis_startup_pages_released_bytes 4.7816704e+07\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			fmt.Fprint(w, "go_goroutines 27\n")
			return
		}
		fmt.Fprint(w, page)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name      string
		path      string
		wantValue float64
		wantFound bool
	}{
		{name: "present", path: "/stats/prometheus", wantValue: 47816704, wantFound: true},
		{name: "older binary", path: "/old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, found, err := scrapeGauge(ctx, srv.Client(), srv.URL+tt.path, releasedMetric)
			if err != nil || v != tt.wantValue || found != tt.wantFound {
				t.Errorf("scrapeGauge = %v, %v, %v; want %v, %v, nil", v, found, err, tt.wantValue, tt.wantFound)
			}
		})
	}
}

// TestWaitReleased: the wait ends once the gauge goes above zero, not before.
func TestWaitReleased(t *testing.T) {
	var scrapes atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := 0
		if scrapes.Add(1) >= 3 {
			v = 1024
		}
		fmt.Fprintf(w, "%s %d\n", releasedMetric, v)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitReleased(ctx, srv.Client(), srv.URL); err != nil {
		t.Fatal(err)
	}
	if n := scrapes.Load(); n < 3 {
		t.Errorf("waitReleased returned after %d scrapes, before the gauge went above zero", n)
	}
}

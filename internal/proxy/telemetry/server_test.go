package telemetry

import (
	"compress/gzip"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsCompressedOnlyWhenLarge: a small page goes as it is, a large one (more
// label sets than CompressAboveLabelSets) is gzipped for a client that accepts it.
func TestMetricsCompressedOnlyWhenLarge(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "trellis_test_total", Help: "A test counter."}))
	tests := []struct {
		name         string
		labelSets    func() int
		wantEncoding string
	}{
		{name: "small page", labelSets: func() int { return 1 }},
		{name: "at the bound", labelSets: func() int { return CompressAboveLabelSets }},
		{name: "large page", labelSets: func() int { return CompressAboveLabelSets + 1 }, wantEncoding: "gzip"},
		{name: "size unknown", wantEncoding: "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(metricsHandler(reg, tt.labelSets, log.New(io.Discard, "", 0)))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			// A Transport that does not decompress on its own, to see the encoding.
			resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Errorf("Content-Encoding = %q, want %q", got, tt.wantEncoding)
			}
			body := io.Reader(resp.Body)
			if tt.wantEncoding == "gzip" {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			page, err := io.ReadAll(body)
			if err != nil || !strings.Contains(string(page), "trellis_test_total 0") {
				t.Errorf("page = %q, %v; want the counter", page, err)
			}
		})
	}
}

package tracing

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

func TestSampling(t *testing.T) {
	const parent = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name        string
		sampling    float64
		traceparent string
		wantTrace   string // "" for a new one
		wantFlags   string
	}{
		{name: "new trace, 0%", sampling: 0, wantFlags: "00"},
		{name: "new trace, 100%", sampling: 100, wantFlags: "01"},
		{name: "sampled parent, 0%", sampling: 0, traceparent: "00-" + parent + "-00f067aa0ba902b7-01", wantTrace: parent, wantFlags: "01"},
		{name: "unsampled parent, 100%", sampling: 100, traceparent: "00-" + parent + "-00f067aa0ba902b7-00", wantTrace: parent, wantFlags: "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(context.Background(), Config{Sampling: tt.sampling, ServiceName: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			r := httptest.NewRequest("GET", "http://reviews/", nil)
			if tt.traceparent != "" {
				r.Header.Set("Traceparent", tt.traceparent)
			}
			info := &reqinfo.Info{Start: time.Now()}
			tr.Start(r, info)
			parts := strings.Split(r.Header.Get("Traceparent"), "-")
			if len(parts) != 4 {
				t.Fatalf("traceparent %q", r.Header.Get("Traceparent"))
			}
			if tt.wantTrace != "" && parts[1] != tt.wantTrace {
				t.Errorf("trace id %s, want %s", parts[1], tt.wantTrace)
			}
			if parts[1] == strings.Repeat("0", 32) || parts[1] != hexOf(info.Telemetry.TraceID) {
				t.Errorf("trace id %s, info has %s", parts[1], hexOf(info.Telemetry.TraceID))
			}
			if parts[3] != tt.wantFlags {
				t.Errorf("flags %s, want %s", parts[3], tt.wantFlags)
			}
			tr.End(info)
			if info.Telemetry.Span != nil {
				t.Error("End left the span in the info")
			}
		})
	}
	if _, err := New(context.Background(), Config{Sampling: 101}); err == nil {
		t.Error("New accepted 101%")
	}
	if _, err := New(context.Background(), Config{Sampling: 1, Endpoint: "collector:4318"}); err == nil {
		t.Error("New accepted an endpoint that is not a URL")
	}
}

func hexOf(id [16]byte) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for _, c := range id {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

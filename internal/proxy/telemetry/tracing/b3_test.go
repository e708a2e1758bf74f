package tracing

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestB3Extract(t *testing.T) {
	const (
		traceID = "463ac35c9f6413ad48485a3953bb6124"
		spanID  = "a2fb4a1d1a96d312"
	)
	tests := []struct {
		name        string
		headers     map[string]string
		wantTrace   string // "" when nothing is extracted
		wantSampled bool
	}{
		{name: "single sampled", headers: map[string]string{"b3": traceID + "-" + spanID + "-1"}, wantTrace: traceID, wantSampled: true},
		{name: "single with parent", headers: map[string]string{"b3": traceID + "-" + spanID + "-0-05e3ac9a4f6e3b90"}, wantTrace: traceID},
		{name: "single debug", headers: map[string]string{"b3": traceID + "-" + spanID + "-d"}, wantTrace: traceID, wantSampled: true},
		{name: "single no sampling", headers: map[string]string{"b3": traceID + "-" + spanID}, wantTrace: traceID},
		{name: "single 64-bit trace id", headers: map[string]string{"b3": "48485a3953bb6124-" + spanID + "-1"},
			wantTrace: "000000000000000048485a3953bb6124", wantSampled: true},
		{name: "single decision only", headers: map[string]string{"b3": "0"}},
		{name: "single malformed", headers: map[string]string{"b3": "xyz-" + spanID + "-1"}},
		{name: "multi", headers: map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": spanID, "X-B3-Sampled": "1"}, wantTrace: traceID, wantSampled: true},
		{name: "multi flags", headers: map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": spanID, "X-B3-Flags": "1"}, wantTrace: traceID, wantSampled: true},
		{name: "multi not sampled", headers: map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": spanID, "X-B3-Sampled": "0"}, wantTrace: traceID},
		{name: "multi bad sampled", headers: map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": spanID, "X-B3-Sampled": "maybe"}},
		{name: "multi no span", headers: map[string]string{"X-B3-TraceId": traceID}},
		{name: "none", headers: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			sc := trace.SpanContextFromContext(B3{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
			got := ""
			if sc.IsValid() {
				got = sc.TraceID().String()
			}
			if diff := cmp.Diff(tt.wantTrace, got); diff != "" {
				t.Errorf("trace id (-want +got):\n%s", diff)
			}
			if sc.IsValid() && sc.IsSampled() != tt.wantSampled {
				t.Errorf("sampled = %v, want %v", sc.IsSampled(), tt.wantSampled)
			}
		})
	}
}

func TestB3InjectRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	for _, b := range []B3{{Single: true}, {}} {
		h := http.Header{}
		b.Inject(ctx, propagation.HeaderCarrier(h))
		got := trace.SpanContextFromContext(b.Extract(context.Background(), propagation.HeaderCarrier(h)))
		if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() {
			t.Errorf("B3{Single: %v}: injected %v, extracted %v", b.Single, h, got)
		}
	}
}

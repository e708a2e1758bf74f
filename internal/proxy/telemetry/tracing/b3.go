package tracing

import (
	"context"
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// B3 header names (openzipkin/b3-propagation).
const (
	b3Single       = "b3"
	b3TraceID      = "x-b3-traceid"
	b3SpanID       = "x-b3-spanid"
	b3Sampled      = "x-b3-sampled"
	b3Flags        = "x-b3-flags"
	b3ParentSpanID = "x-b3-parentspanid"
)

// B3 propagates the trace context in Zipkin's B3 headers: the single header
// "b3: {trace}-{span}[-{sampling}[-{parent}]]" or the multiple X-B3-* headers. Extract
// reads either (the single header first); Inject writes the single header when
// Single is set, else the multiple ones.
type B3 struct {
	Single bool
}

var _ propagation.TextMapPropagator = B3{}

// Fields lists the headers B3 uses.
func (b B3) Fields() []string {
	if b.Single {
		return []string{b3Single}
	}
	return []string{b3TraceID, b3SpanID, b3Sampled, b3Flags}
}

// Inject writes the span context of ctx, if valid.
func (b B3) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	sc := trace.SpanFromContext(ctx).SpanContext()
	if !sc.TraceID().IsValid() || !sc.SpanID().IsValid() {
		return
	}
	sampled := "0"
	if sc.IsSampled() {
		sampled = "1"
	}
	if b.Single {
		carrier.Set(b3Single, sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sampled)
		return
	}
	carrier.Set(b3TraceID, sc.TraceID().String())
	carrier.Set(b3SpanID, sc.SpanID().String())
	carrier.Set(b3Sampled, sampled)
}

// Extract returns ctx with the remote span context of the carrier's B3 headers, or
// ctx unchanged when they are absent or malformed.
func (b B3) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	var sc trace.SpanContext
	var ok bool
	if v := carrier.Get(b3Single); v != "" {
		sc, ok = parseB3Single(v)
	} else if t := carrier.Get(b3TraceID); t != "" {
		sc, ok = parseB3(t, carrier.Get(b3SpanID), carrier.Get(b3Sampled), carrier.Get(b3Flags))
	}
	if !ok {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

func parseB3Single(v string) (trace.SpanContext, bool) {
	parts := strings.Split(v, "-")
	if len(parts) < 2 || len(parts) > 4 {
		// "0", "1" or "d" alone carry only a sampling decision: no parent to follow.
		return trace.SpanContext{}, false
	}
	sampling := ""
	if len(parts) >= 3 {
		sampling = parts[2]
	}
	flags := ""
	if sampling == "d" {
		sampling, flags = "", "1"
	}
	return parseB3(parts[0], parts[1], sampling, flags)
}

func parseB3(traceID, spanID, sampled, flags string) (trace.SpanContext, bool) {
	var cfg trace.SpanContextConfig
	if len(traceID) == 16 {
		traceID = strings.Repeat("0", 16) + traceID
	}
	if len(traceID) != 32 || len(spanID) != 16 {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(cfg.TraceID[:], []byte(strings.ToLower(traceID))); err != nil {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(cfg.SpanID[:], []byte(strings.ToLower(spanID))); err != nil {
		return trace.SpanContext{}, false
	}
	switch {
	case flags == "1", sampled == "1", strings.EqualFold(sampled, "true"):
		cfg.TraceFlags = trace.FlagsSampled
	case sampled == "0", strings.EqualFold(sampled, "false"), sampled == "":
	default:
		return trace.SpanContext{}, false
	}
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

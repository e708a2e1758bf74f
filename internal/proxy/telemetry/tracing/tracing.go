package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// Attributes of the sidecar's own, beside the HTTP semantic conventions.
const (
	AttrUpstreamCluster = attribute.Key("trellis.upstream_cluster")
	AttrUpstreamHost    = attribute.Key("trellis.upstream_host")
	AttrResponseFlags   = attribute.Key("trellis.response_flags")
	AttrReporter        = attribute.Key("trellis.reporter")
	AttrGRPCStatus      = attribute.Key("rpc.grpc.status_code")
)

// Config configures tracing.
type Config struct {
	// Sampling is the percentage (0 to 100) of new traces that are sampled; a request
	// that carries a trace follows its parent's decision.
	Sampling float64
	// Endpoint is the OTLP/HTTP collector URL: http://host:4318 (spans go to its
	// /v1/traces) or a URL with a path (used as it is). Empty:
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; none set:
	// spans are not exported.
	Endpoint string
	// ServiceName and ServiceNamespace name the sidecar's spans (service.name,
	// service.namespace).
	ServiceName, ServiceNamespace string
	// Logger, if set, receives OpenTelemetry's errors (export failures): it becomes
	// the process's OpenTelemetry error handler.
	Logger *slog.Logger
}

// Tracer starts and ends the spans of the sidecar's hops.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	w3c      propagation.TraceContext
	export   bool
}

// New builds the tracer provider: parent-based sampling at cfg.Sampling percent and,
// when an endpoint is configured, a batching OTLP/HTTP exporter. Shutdown flushes it.
func New(ctx context.Context, cfg Config) (*Tracer, error) {
	if cfg.Sampling < 0 || cfg.Sampling > 100 {
		return nil, fmt.Errorf("trace sampling %v%% is not between 0 and 100", cfg.Sampling)
	}
	res, err := resource.New(ctx, resource.WithAttributes(
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceNamespace(cfg.ServiceNamespace),
	))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Sampling / 100))),
	}
	if cfg.Logger != nil {
		log := cfg.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	}
	t := &Tracer{}
	if cfg.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" {
		var eo []otlptracehttp.Option
		if cfg.Endpoint != "" {
			u, err := url.Parse(cfg.Endpoint)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, fmt.Errorf("trace endpoint %q is not an http(s) URL", cfg.Endpoint)
			}
			if u.Path == "" || u.Path == "/" {
				u.Path = "/v1/traces"
			}
			eo = append(eo, otlptracehttp.WithEndpointURL(u.String()))
		}
		exp, err := otlptracehttp.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("starting the OTLP/HTTP trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
		t.export = true
	}
	t.provider = sdktrace.NewTracerProvider(opts...)
	t.tracer = t.provider.Tracer("trellis.dev/trellis/internal/proxy")
	return t, nil
}

// Exporting reports whether spans are exported.
func (t *Tracer) Exporting() bool { return t.export }

// Start starts the span of a request's hop, child of the trace context the request
// carries, and replaces that context in the request's headers by the span's. The
// span and its trace id go into info.
func (t *Tracer) Start(r *http.Request, info *reqinfo.Info) {
	tm := &info.Telemetry
	carrier := propagation.HeaderCarrier(r.Header)
	ctx := context.Background()
	var b3 *B3
	switch {
	case r.Header.Get("Traceparent") != "":
		ctx = t.w3c.Extract(ctx, carrier)
	case r.Header.Get("B3") != "":
		b3 = &B3{Single: true}
	case r.Header.Get("X-B3-Traceid") != "":
		b3 = &B3{}
	}
	if b3 != nil {
		ctx = b3.Extract(ctx, carrier)
	}
	kind := trace.SpanKindClient
	if tm.Inbound {
		kind = trace.SpanKindServer
	}
	ctx, span := t.tracer.Start(ctx, tm.Method, trace.WithSpanKind(kind), trace.WithTimestamp(info.Start),
		trace.WithAttributes(
			semconv.HTTPRequestMethodKey.String(tm.Method),
			semconv.URLPath(tm.Path),
			semconv.ServerAddress(hostOnly(tm.Authority)),
			semconv.NetworkProtocolVersion(protocolVersion(tm.Proto)),
			semconv.UserAgentOriginal(r.UserAgent()),
		))
	tm.Span, tm.TraceID = span, span.SpanContext().TraceID()
	t.w3c.Inject(ctx, carrier)
	if b3 != nil {
		r.Header.Del(b3ParentSpanID)
		b3.Inject(ctx, carrier)
	}
}

// End sets the response's attributes on the span Start began and ends it.
func (t *Tracer) End(info *reqinfo.Info) {
	tm := &info.Telemetry
	span, ok := tm.Span.(trace.Span)
	if !ok {
		return
	}
	tm.Span = nil
	if info.Cluster != "" {
		span.SetName(tm.Method + " " + info.Cluster)
	}
	reporter := "source"
	if tm.Inbound {
		reporter = "destination"
	}
	span.SetAttributes(
		semconv.HTTPResponseStatusCode(info.Code),
		semconv.HTTPRequestBodySize(int(info.BytesReceived)),
		semconv.HTTPResponseBodySize(int(info.BytesSent)),
		AttrUpstreamCluster.String(info.Cluster),
		AttrUpstreamHost.String(info.Host),
		AttrResponseFlags.String(info.Flags.String()),
		AttrReporter.String(reporter),
	)
	if tm.GRPC && tm.GRPCStatus >= 0 {
		span.SetAttributes(AttrGRPCStatus.Int(tm.GRPCStatus))
	}
	// HTTP semantic conventions: a server span is an error on 5xx, a client span on
	// 4xx too; no response at all is one as well.
	if info.Code == 0 || info.Code >= 500 || !tm.Inbound && info.Code >= 400 {
		span.SetStatus(codes.Error, strconv.Itoa(info.Code)+" "+info.Flags.String())
	}
	span.End(trace.WithTimestamp(info.Start.Add(info.Duration)))
}

// Shutdown exports the spans still queued and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping tracing: %w", err)
	}
	return nil
}

// ForceFlush exports the spans queued so far.
func (t *Tracer) ForceFlush(ctx context.Context) error { return t.provider.ForceFlush(ctx) }

func hostOnly(authority string) string {
	if h, _, err := net.SplitHostPort(authority); err == nil {
		return h
	}
	return authority
}

// protocolVersion is network.protocol.version: "1.1" for "HTTP/1.1", "2" for
// "HTTP/2.0".
func protocolVersion(proto string) string {
	switch proto {
	case "HTTP/1.1":
		return "1.1"
	case "HTTP/2.0":
		return "2"
	case "HTTP/1.0":
		return "1.0"
	}
	return proto
}

package telemetry

import (
	"fmt"
	"io"
	"os"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/reqinfo"
	"trellis.dev/trellis/internal/proxy/telemetry/metrics"
	"trellis.dev/trellis/internal/proxy/telemetry/tracing"
)

// DefaultSampling is the trace sampling percentage when tracing is on and the
// bootstrap sets none.
const DefaultSampling = 100

// FromBootstrap is the telemetry configuration of a sidecar's bootstrap, with the
// access log file opened (close it after Telemetry.Close; nil when there is none).
// Tracing is on when the bootstrap has a tracing section or the environment names
// an OTLP endpoint.
func FromBootstrap(b *bootstrap.Bootstrap) (Config, io.Closer, error) {
	md := &b.Node.Metadata
	ns := md.Namespace
	if ns == "" {
		ns = names.DefaultNamespace
	}
	self := reqinfo.Peer{
		Workload:  md.Workload,
		Namespace: ns,
		App:       firstLabel(md.Labels, "app", "app.kubernetes.io/name"),
		Version:   firstLabel(md.Labels, "version", "app.kubernetes.io/version"),
	}
	if b.TokenFile != "" {
		// The sidecar takes part in mutual TLS with this identity.
		sa := md.ServiceAccount
		if sa == "" {
			sa = "default"
		}
		id := identity.New(ns, sa)
		if b.TrustDomain != "" {
			id.TrustDomain = b.TrustDomain
		}
		self.Principal = id.String()
	}
	cfg := Config{Self: self, Metrics: metrics.Config{Compat: b.MetricsCompat}}
	if md.Service != "" {
		cfg.Service = names.ServiceFQDN(md.Service, ns)
	}
	tr := b.Tracing
	if tr == nil && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		tr = &bootstrap.Tracing{}
	}
	if tr != nil {
		service := self.App
		if service == "" {
			service = self.Workload
		}
		cfg.Tracing = &tracing.Config{Sampling: DefaultSampling, Endpoint: tr.Endpoint,
			ServiceName: service + "." + ns, ServiceNamespace: ns}
		if tr.Sampling != nil {
			cfg.Tracing.Sampling = *tr.Sampling
		}
	}
	var closer io.Closer
	switch b.AccessLog {
	case "", "off":
	case "-":
		cfg.AccessLog = os.Stdout
	default:
		f, err := os.OpenFile(b.AccessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return Config{}, nil, fmt.Errorf("opening the access log: %w", err)
		}
		cfg.AccessLog, closer = f, f
	}
	return cfg, closer, nil
}

func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}

package xdsgen

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"trellis.dev/trellis/internal/model"
)

// peerMetadataKey is the filter_metadata key of the workload metadata on endpoints
// (docs/xds.md, "Endpoints"), which the sidecar reads for its telemetry labels.
const peerMetadataKey = "trellis"

// endpointMetadata describes the workload behind a sidecar's endpoint: its name and
// namespace (from the node ID, <workload>.<namespace>), app and version labels and
// SPIFFE ID. An endpoint without a sidecar (a ServiceEntry's) has none: nil.
func endpointMetadata(ep model.Endpoint) *corev3.Metadata {
	dot := strings.LastIndexByte(ep.NodeID, '.')
	if dot <= 0 {
		return nil
	}
	fields := map[string]*structpb.Value{
		"workload":  structpb.NewStringValue(ep.NodeID[:dot]),
		"namespace": structpb.NewStringValue(ep.NodeID[dot+1:]),
	}
	add := func(name, value string) {
		if value != "" {
			fields[name] = structpb.NewStringValue(value)
		}
	}
	add("app", firstLabel(ep.Labels, "app", "app.kubernetes.io/name"))
	add("version", firstLabel(ep.Labels, "version", "app.kubernetes.io/version"))
	add("principal", ep.Identity)
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{peerMetadataKey: {Fields: fields}}}
}

func firstLabel(labels map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return ""
}

package extauthz

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"trellis.dev/trellis/internal/proxy/authz"
)

// DefaultTimeout bounds a Check when the configuration sets no timeout (Istio's).
const DefaultTimeout = 600 * time.Millisecond

// Settings are one ext_authz filter's (HTTP or network) compiled configuration.
type Settings struct {
	// Cluster is the authorizer's cluster (envoy_grpc.cluster_name).
	Cluster string
	// Timeout bounds each Check.
	Timeout time.Duration
	// FailOpen lets the request through when the authorizer cannot be asked
	// (failure_mode_allow); by default it is refused.
	FailOpen bool
	// Enabled, if set, limits the Check to the requests whose metadata match.
	Enabled *authz.MetadataMatcher
}

// CompileHTTP reads an envoy.filters.http.ext_authz configuration whose fields the
// caller has checked against the contract.
func CompileHTTP(cfg *extauthzv3.ExtAuthz) (*Settings, error) {
	gs, ok := cfg.GetServices().(*extauthzv3.ExtAuthz_GrpcService)
	if !ok {
		return nil, fmt.Errorf("grpc_service: is required (only the gRPC API is supported)")
	}
	return compile(gs.GrpcService, cfg.GetTransportApiVersion(), cfg.GetFailureModeAllow(), cfg.GetFilterEnabledMetadata(), authz.HTTPRBACFilter)
}

// CompileNetwork reads an envoy.filters.network.ext_authz configuration.
func CompileNetwork(cfg *netextauthzv3.ExtAuthz) (*Settings, error) {
	return compile(cfg.GetGrpcService(), cfg.GetTransportApiVersion(), cfg.GetFailureModeAllow(), cfg.GetFilterEnabledMetadata(), authz.NetworkRBACFilter)
}

func compile(gs *corev3.GrpcService, version corev3.ApiVersion, failOpen bool, enabled *matcherv3.MetadataMatcher, rbacFilter string) (*Settings, error) {
	if version != corev3.ApiVersion_V3 {
		return nil, fmt.Errorf("transport_api_version: %s is not supported (want V3)", version)
	}
	s := &Settings{Cluster: gs.GetEnvoyGrpc().GetClusterName(), Timeout: DefaultTimeout, FailOpen: failOpen}
	if s.Cluster == "" {
		return nil, fmt.Errorf("grpc_service.envoy_grpc.cluster_name: is required")
	}
	if t := gs.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() <= 0 {
			return nil, fmt.Errorf("grpc_service.timeout: must be a positive duration")
		}
		s.Timeout = t.AsDuration()
	}
	if enabled != nil {
		m, err := authz.CompileMetadata(enabled, rbacFilter)
		if err != nil {
			return nil, fmt.Errorf("filter_enabled_metadata: %w", err)
		}
		s.Enabled = m
	}
	return s, nil
}

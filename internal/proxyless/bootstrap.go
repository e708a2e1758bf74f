package proxyless

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/names"
)

// The files of the certificate provider, in Config.CertDir.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
	CAFile   = "ca.pem"
)

// DefaultRefreshInterval is how often grpc-go re-reads the certificate files.
const DefaultRefreshInterval = 10 * time.Second

// Config describes one proxyless application.
type Config struct {
	// Node is the application's xDS node; Bootstrap sets Metadata.Proxyless.
	Node bootstrap.Node
	// XDS is the control plane's xDS address (host:port).
	XDS string
	// XDSCAFile, if set, verifies the control plane's serving certificate (TLS to
	// XDS), and with CertDir the workload certificate authenticates the stream;
	// empty: plaintext, unauthenticated (a control plane that requires
	// authentication refuses it).
	XDSCAFile string
	// CertDir, if set, holds the certificate provider's files (CertFile, KeyFile,
	// CAFile), which an Agent keeps fresh: the application takes part in mutual TLS.
	// Empty: no certificate, plaintext only.
	CertDir string
	// RefreshInterval is how often grpc-go re-reads the files; default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
}

// grpcBootstrap is the gRPC xDS bootstrap file, as grpc-go reads it.
type grpcBootstrap struct {
	XDSServers                         []xdsServer                    `json:"xds_servers"`
	Node                               grpcNode                       `json:"node"`
	CertificateProviders               map[string]certificateProvider `json:"certificate_providers,omitempty"`
	ServerListenerResourceNameTemplate string                         `json:"server_listener_resource_name_template"`
}

type xdsServer struct {
	ServerURI      string         `json:"server_uri"`
	ChannelCreds   []channelCreds `json:"channel_creds"`
	ServerFeatures []string       `json:"server_features,omitempty"`
}

type channelCreds struct {
	Type   string `json:"type"`
	Config any    `json:"config,omitempty"`
}

type grpcNode struct {
	ID       string             `json:"id"`
	Cluster  string             `json:"cluster,omitempty"`
	Metadata bootstrap.Metadata `json:"metadata"`
}

type certificateProvider struct {
	PluginName string         `json:"plugin_name"`
	Config     map[string]any `json:"config"`
}

// Bootstrap returns the gRPC xDS bootstrap file of cfg (JSON).
func Bootstrap(cfg Config) ([]byte, error) {
	if cfg.Node.ID == "" {
		return nil, fmt.Errorf("writing gRPC bootstrap: node id is empty")
	}
	if cfg.XDS == "" {
		return nil, fmt.Errorf("writing gRPC bootstrap of %s: no xDS address", cfg.Node.ID)
	}
	md := cfg.Node.Metadata
	md.Proxyless = bootstrap.ProxylessGRPC
	md.MTLS = cfg.CertDir != ""
	// grpc-go's servers enforce RBAC (docs/proxyless.md); the control plane narrows
	// the policies to what grpc-go implements.
	md.Authz = true
	creds := channelCreds{Type: "insecure"}
	if cfg.XDSCAFile != "" {
		tlsCreds := map[string]string{"ca_certificate_file": cfg.XDSCAFile}
		if cfg.CertDir != "" {
			// The workload certificate authenticates the xDS stream (mutual TLS
			// credentials in the bootstrap, which grpc-go re-reads at every
			// handshake): the control plane requires it by default.
			tlsCreds["certificate_file"] = filepath.Join(cfg.CertDir, CertFile)
			tlsCreds["private_key_file"] = filepath.Join(cfg.CertDir, KeyFile)
		}
		creds = channelCreds{Type: "tls", Config: tlsCreds}
	}
	b := grpcBootstrap{
		XDSServers:                         []xdsServer{{ServerURI: cfg.XDS, ChannelCreds: []channelCreds{creds}, ServerFeatures: []string{"xds_v3"}}},
		Node:                               grpcNode{ID: cfg.Node.ID, Cluster: cfg.Node.Cluster, Metadata: md},
		ServerListenerResourceNameTemplate: names.GRPCServerListenerTemplate,
	}
	if cfg.CertDir != "" {
		refresh := cfg.RefreshInterval
		if refresh <= 0 {
			refresh = DefaultRefreshInterval
		}
		b.CertificateProviders = map[string]certificateProvider{names.GRPCCertProvider: {
			PluginName: "file_watcher",
			Config: map[string]any{
				"certificate_file":    filepath.Join(cfg.CertDir, CertFile),
				"private_key_file":    filepath.Join(cfg.CertDir, KeyFile),
				"ca_certificate_file": filepath.Join(cfg.CertDir, CAFile),
				"refresh_interval":    refresh.String(),
			},
		}}
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("writing gRPC bootstrap of %s: %w", cfg.Node.ID, err)
	}
	return append(out, '\n'), nil
}

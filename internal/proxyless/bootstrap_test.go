package proxyless

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
)

func TestBootstrap(t *testing.T) {
	node := bootstrap.Node{ID: "greeter-v1.default", Cluster: "greeter", Metadata: bootstrap.Metadata{
		Workload: "greeter-v1", Namespace: "default", Service: "greeter",
		Ports: []bootstrap.Port{{Name: "grpc", Port: 9090, Protocol: "GRPC", Target: "127.0.0.1:18090", Inbound: "127.0.0.1:18090"}},
	}}
	tests := []struct {
		name string
		cfg  Config
		want string // JSON
	}{{
		name: "plaintext, no certificate",
		cfg:  Config{Node: node, XDS: "127.0.0.1:15010"},
		want: `{
		  "xds_servers": [{"server_uri": "127.0.0.1:15010", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		  "node": {"id": "greeter-v1.default", "cluster": "greeter", "metadata": {
		    "workload": "greeter-v1", "namespace": "default", "service": "greeter", "authz": true, "proxyless": "grpc",
		    "ports": [{"name": "grpc", "port": 9090, "protocol": "GRPC", "target": "127.0.0.1:18090", "inbound": "127.0.0.1:18090"}]}},
		  "server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s"
		}`,
	}, {
		name: "mutual TLS to the control plane with the workload certificate, certificate provider",
		cfg:  Config{Node: node, XDS: "cp:15012", XDSCAFile: "/ca/roots.pem", CertDir: "/certs"},
		want: `{
		  "xds_servers": [{"server_uri": "cp:15012", "channel_creds": [{"type": "tls", "config": {"ca_certificate_file": "/ca/roots.pem",
		    "certificate_file": "` + filepath.Join("/certs", CertFile) + `", "private_key_file": "` + filepath.Join("/certs", KeyFile) + `"}}], "server_features": ["xds_v3"]}],
		  "node": {"id": "greeter-v1.default", "cluster": "greeter", "metadata": {
		    "workload": "greeter-v1", "namespace": "default", "service": "greeter", "mtls": true, "authz": true, "proxyless": "grpc",
		    "ports": [{"name": "grpc", "port": 9090, "protocol": "GRPC", "target": "127.0.0.1:18090", "inbound": "127.0.0.1:18090"}]}},
		  "certificate_providers": {"trellis": {"plugin_name": "file_watcher", "config": {
		    "certificate_file": "` + filepath.Join("/certs", CertFile) + `", "private_key_file": "` + filepath.Join("/certs", KeyFile) + `",
		    "ca_certificate_file": "` + filepath.Join("/certs", CAFile) + `", "refresh_interval": "10s"}}},
		  "server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s"
		}`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Bootstrap(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("bootstrap (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Bootstrap(Config{Node: node}); err == nil {
		t.Error("a bootstrap without an xDS address was written")
	}
}

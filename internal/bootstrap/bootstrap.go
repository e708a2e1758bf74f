package bootstrap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Bootstrap is a sidecar's start-up configuration.
type Bootstrap struct {
	// Node identifies the proxy to the control plane.
	Node Node `json:"node"`
	// XDS is the control plane's address (host:port). The sidecar reaches both xDS and
	// the CA service (certificate signing) there.
	XDS string `json:"xds"`
	// XDSCAFile is a PEM bundle that verifies the control plane's serving certificate;
	// set, the sidecar connects with TLS; empty, in plaintext (local mode and tests).
	// The sidecar re-reads it at every (re)connection, since a root rotation changes it.
	XDSCAFile string `json:"xdsCAFile,omitempty"`
	// XDSServerName is the name the control plane's certificate is verified against;
	// default: the host of XDS.
	XDSServerName string `json:"xdsServerName,omitempty"`
	// TokenFile holds the join token that authenticates the sidecar's certificate
	// requests (local mode). Without it the sidecar has no certificate and cannot take
	// part in mutual TLS.
	TokenFile string `json:"tokenFile,omitempty"`
	// TrustDomain is the trust domain of the workload's SPIFFE ID; default
	// cluster.local.
	TrustDomain string `json:"trustDomain,omitempty"`
	// CertTTL is the certificate lifetime the sidecar asks for; zero: the CA's default
	// (24h).
	CertTTL Duration `json:"certTTL,omitempty"`
	// CertRenewEvery, a test setting, renews the certificate this often instead of at
	// half its lifetime.
	CertRenewEvery Duration `json:"certRenewEvery,omitempty"`
	// Delta selects the incremental (Delta) xDS protocol instead of State of the World.
	Delta bool `json:"delta,omitempty"`
	// Admin is the admin listener's address; it must be a loopback address.
	Admin string `json:"admin"`
	// DrainPeriod is how long the sidecar keeps accepting, without keep-alives, after
	// SIGTERM before it stops accepting; requests in flight then have as long again to
	// finish (docs/proxy.md, "Shutdown"). Zero: DefaultDrainPeriod. `trellis proxy --drain-period` and
	// TRELLIS_DRAIN_PERIOD win over it.
	DrainPeriod Duration `json:"drainPeriod,omitempty"`

	// Telemetry (docs/telemetry.md).

	// Metrics is where the sidecar serves its Prometheus metrics (/stats/prometheus)
	// and readiness (/healthz/ready); empty: nowhere (the metrics are still kept). In
	// a pod it is DefaultMetrics.
	Metrics string `json:"metrics,omitempty"`
	// MetricsCompat "istio" names the metrics as Istio does (istio_requests_total,
	// ...); empty or "trellis": trellis_requests_total, ...
	MetricsCompat string `json:"metricsCompat,omitempty"`
	// AccessLog is where the JSON access log goes: "-" for standard output, a file
	// path, or empty or "off" for none.
	AccessLog string `json:"accessLog,omitempty"`
	// Tracing, when set, turns OpenTelemetry tracing on.
	Tracing *Tracing `json:"tracing,omitempty"`

	// DNS is where the sidecar answers DNS (UDP and TCP) for the mesh's hosts and
	// forwards other names to the resolvers of /etc/resolv.conf (docs/kubernetes.md
	// "DNS"); empty: no DNS server. In a pod it is DefaultDNS, where `trellis iptables
	// --redirect-dns` sends the pod's port-53 traffic.
	DNS string `json:"dns,omitempty"`
	// AppProbes are the app probes the sidecar answers on its metrics server, by
	// path (/app-health/<container>/<livez|readyz|startupz>); see AppProbe.
	AppProbes map[string]AppProbe `json:"appProbes,omitempty"`
}

// AppProbe is an app container's HTTP probe that the sidecar runs for the kubelet: the
// injector points the probe at the sidecar's metrics port (which iptables does not
// redirect, so it works whatever the pod's mutual TLS mode), and the sidecar, asked on
// the probe's path there, sends the original request to the app on loopback.
type AppProbe struct {
	// Port, Path, Scheme ("HTTP" or "HTTPS"), Host and Headers are the original
	// httpGet's (a named port resolved to its number).
	Port    int          `json:"port"`
	Path    string       `json:"path,omitempty"`
	Scheme  string       `json:"scheme,omitempty"`
	Host    string       `json:"host,omitempty"`
	Headers []HTTPHeader `json:"headers,omitempty"`
	// TimeoutSeconds is the probe's timeout (Kubernetes' default 1s when zero).
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// HTTPHeader is one header of an AppProbe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// AppProbesEnv is the environment variable through which the injector gives the
// sidecar the app probes it rewrote: a JSON object, metrics-server path -> AppProbe.
const AppProbesEnv = "TRELLIS_APP_PROBES"

// LabelsEnv is the environment variable through which the injector gives the sidecar
// its pod's labels, as they were when the pod was created: a JSON object. The sidecar
// announces them as its node's labels, which workload selectors match.
const LabelsEnv = "TRELLIS_LABELS"

// DefaultDNS is the DNS address of a sidecar in a pod.
const DefaultDNS = "127.0.0.1:15053"

// DefaultDrainPeriod is a sidecar's drain period when nothing sets one.
const DefaultDrainPeriod = 5 * time.Second

// DefaultMetrics is the metrics address of a sidecar in a pod.
const DefaultMetrics = "0.0.0.0:15020"

// Tracing configures a sidecar's OpenTelemetry tracing.
type Tracing struct {
	// Sampling is the percentage (0 to 100) of new traces sampled; a request that
	// carries a trace follows its parent's decision. Absent: 100.
	Sampling *float64 `json:"sampling,omitempty"`
	// Endpoint is the OTLP/HTTP collector URL (http://127.0.0.1:4318); empty: the
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT environment
	// variable; none: spans are made and propagated but not exported.
	Endpoint string `json:"endpoint,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("24h", "1.5s").
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Std is d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Node is the xDS node a sidecar announces.
type Node struct {
	// ID is unique per sidecar: <workload>.<namespace>.
	ID string `json:"id"`
	// Cluster is the service the workload serves, or its name when it serves none.
	Cluster string `json:"cluster"`
	// Metadata describes the workload; see Metadata.
	Metadata Metadata `json:"metadata"`
}

// Metadata is what a sidecar tells the control plane about its workload.
type Metadata struct {
	// Workload is the workload's name; Namespace its namespace.
	Workload  string `json:"workload"`
	Namespace string `json:"namespace"`
	// Labels are the workload's labels: Service selectors and subsets match them.
	Labels map[string]string `json:"labels,omitempty"`
	// ServiceAccount is the workload's identity.
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// Service is the service the workload declares (local mode), if any.
	Service string `json:"service,omitempty"`
	// Ports are the workload's ports and where the sidecar's inbound listener for each
	// must be bound.
	Ports []Port `json:"ports,omitempty"`
	// Outbound is where the sidecar's outbound listener must be bound.
	Outbound string `json:"outbound,omitempty"`
	// Upstreams are the local TCP binds that forward to a service port.
	Upstreams []Upstream `json:"upstreams,omitempty"`
	// MTLS says that the sidecar takes part in mutual TLS: it implements the
	// "Security" section of docs/xds.md and holds a certificate source (a TokenFile).
	// The sidecar sets it itself, whatever its bootstrap file says. The control plane
	// sends the security fields only to sidecars that set it, and uses mutual TLS only
	// toward workloads whose sidecar sets it.
	MTLS bool `json:"mtls,omitempty"`
	// Authz says that the sidecar implements the "Authorization and request
	// authentication" section of docs/xds.md (RBAC, jwt_authn, ext_authz filters and
	// path normalization). The sidecar sets it itself. The control plane sends those
	// fields only to sidecars that set it; toward the others it fails closed.
	Authz bool `json:"authz,omitempty"`
	// Serving says that the sidecar's listeners already serve when it opens the
	// stream (it reconnects, after a control plane restart for instance). The sidecar
	// sets it itself. The control plane makes a sidecar an endpoint of its services
	// once it acknowledges its listeners, or at once when it sets Serving.
	Serving bool `json:"serving,omitempty"`
	// Metrics is where the sidecar serves /stats/prometheus (the bound address of the
	// bootstrap's Metrics), for the control plane's dashboard to scrape; empty when it
	// serves no metrics. The sidecar sets it itself.
	Metrics string `json:"metrics,omitempty"`
	// Admin is the sidecar's admin address (loopback only), where the dashboard reads
	// the request tap in local mode. The sidecar sets it itself.
	Admin string `json:"admin,omitempty"`
	// Mode is ModeTransparent when the workload's traffic is redirected to the sidecar
	// by `trellis iptables` (docs/xds.md "Transparent proxying"): the control plane then
	// sends the virtual listeners on 15001 and 15006. Empty: explicit binds only.
	Mode string `json:"mode,omitempty"`
	// OutboundTrafficPolicy says, in transparent mode, what happens to outbound
	// connections to no known service: "ALLOW_ANY" (the default: passed through as
	// plain TCP) or "REGISTRY_ONLY" (refused).
	OutboundTrafficPolicy string `json:"outboundTrafficPolicy,omitempty"`
	// Proxyless is ProxylessGRPC for a gRPC application that talks xDS itself, with
	// no sidecar (`trellis bootstrap grpc`, docs/proxyless.md): the control plane
	// then sends it the resource shapes grpc-go implements. Its Ports are where the
	// application's xDS-enabled gRPC servers listen (Inbound and Target alike).
	Proxyless string `json:"proxyless,omitempty"`
	// PodIP is, in a Kubernetes pod, the pod's IP (POD_IP from the downward API): the
	// address its transparent sidecar takes inbound traffic on. The control plane then
	// derives the sidecar's inbound ports from the EndpointSlices that list this pod at
	// this address (docs/xds.md "Transparent proxying"), instead of Ports.
	PodIP string `json:"podIP,omitempty"`
}

// ProxylessGRPC is Metadata.Proxyless of a proxyless gRPC application.
const ProxylessGRPC = "grpc"

// ModeTransparent is Metadata.Mode of a sidecar whose traffic is intercepted.
const ModeTransparent = "transparent"

// Port is one workload port as the sidecar serves it.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
	// Target is the app's address for this port (127.0.0.1:<targetPort>).
	Target string `json:"target"`
	// Inbound is where the sidecar accepts traffic for this port; it is the endpoint
	// address other sidecars send to.
	Inbound string `json:"inbound"`
}

// Upstream is a local TCP bind forwarding to a service port.
type Upstream struct {
	// Service is the service's name, resolved from the workload's namespace, or its
	// FQDN.
	Service string `json:"service"`
	Port    uint32 `json:"port"`
	Bind    string `json:"bind"`
}

// Load reads a Bootstrap from a JSON file.
func Load(path string) (*Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading bootstrap: %w", err)
	}
	var b Bootstrap
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("decoding bootstrap %s: %w", path, err)
	}
	if b.Node.ID == "" {
		return nil, fmt.Errorf("bootstrap %s: node.id is empty", path)
	}
	return &b, nil
}

// Write stores a Bootstrap as a JSON file.
func (b *Bootstrap) Write(path string) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// ToProto returns the Envoy node for the xDS requests.
func (n Node) ToProto() (*corev3.Node, error) {
	raw, err := json.Marshal(n.Metadata)
	if err != nil {
		return nil, err
	}
	md := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, md); err != nil {
		return nil, fmt.Errorf("encoding node metadata: %w", err)
	}
	return &corev3.Node{Id: n.ID, Cluster: n.Cluster, Metadata: md}, nil
}

// MetadataFromProto decodes the Metadata a sidecar sent in its xDS node.
func MetadataFromProto(node *corev3.Node) (Metadata, error) {
	var md Metadata
	if node == nil || node.GetMetadata() == nil {
		return md, fmt.Errorf("node %q has no metadata", node.GetId())
	}
	raw, err := protojson.Marshal(node.GetMetadata())
	if err != nil {
		return md, fmt.Errorf("node %q: encoding metadata: %w", node.GetId(), err)
	}
	if err := json.Unmarshal(raw, &md); err != nil {
		return md, fmt.Errorf("node %q: decoding metadata: %w", node.GetId(), err)
	}
	return md, nil
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"trellis.dev/trellis/internal/bootstrap"
)

// kubeProxyFlags are the flags of `trellis proxy --kubernetes` (the injected args:
// docs/kubernetes.md).
type kubeProxyFlags struct {
	enabled   bool
	xds       string
	xdsCA     string
	tokenFile string
	dataDir   string
}

// Where the injected sidecar serves its admin and metrics endpoints.
const (
	kubeAdminAddr   = "127.0.0.1:15000"
	kubeMetricsAddr = "0.0.0.0:15020"
)

// kubernetesBootstrap builds the bootstrap of an injected sidecar from the pod's
// downward-API environment (POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT, POD_IP), the
// injector's (bootstrap.AppProbesEnv, bootstrap.LabelsEnv) and the flags. It announces transparent mode: the pod's traffic is redirected to the sidecar
// by the injected `trellis iptables` step (docs/xds.md "Transparent proxying"), and
// the pod IP as the address it takes inbound traffic on. It serves DNS on DefaultDNS.
func kubernetesBootstrap(f kubeProxyFlags, getenv func(string) string) (*bootstrap.Bootstrap, error) {
	var missing []string
	env := func(name string) string {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	pod, ns, sa, podIP := env("POD_NAME"), env("POD_NAMESPACE"), env("SERVICE_ACCOUNT"), env("POD_IP")
	if len(missing) > 0 {
		return nil, fmt.Errorf("--kubernetes: environment %s not set (the injector sets it from the downward API)", strings.Join(missing, ", "))
	}
	if f.xds == "" {
		return nil, errors.New("--kubernetes: --xds-address is required")
	}
	if f.tokenFile == "" {
		return nil, errors.New("--kubernetes: --token-file is required (the projected service-account token, audience trellis-ca)")
	}
	if ip, err := netip.ParseAddr(podIP); err != nil || !ip.Is4() {
		return nil, fmt.Errorf("--kubernetes: POD_IP %q is not an IPv4 address", podIP)
	}
	var probes map[string]bootstrap.AppProbe
	if v := getenv(bootstrap.AppProbesEnv); v != "" {
		if err := json.Unmarshal([]byte(v), &probes); err != nil {
			return nil, fmt.Errorf("--kubernetes: environment %s: %w", bootstrap.AppProbesEnv, err)
		}
	}
	var labels map[string]string
	if v := getenv(bootstrap.LabelsEnv); v != "" {
		if err := json.Unmarshal([]byte(v), &labels); err != nil {
			return nil, fmt.Errorf("--kubernetes: environment %s: %w", bootstrap.LabelsEnv, err)
		}
	}
	return &bootstrap.Bootstrap{
		Node: bootstrap.Node{
			ID:      pod + "." + ns,
			Cluster: pod,
			Metadata: bootstrap.Metadata{
				Workload:       pod,
				Namespace:      ns,
				ServiceAccount: sa,
				Mode:           bootstrap.ModeTransparent,
				PodIP:          podIP,
				Labels:         labels,
			},
		},
		XDS:       f.xds,
		XDSCAFile: f.xdsCA,
		TokenFile: f.tokenFile,
		Admin:     kubeAdminAddr,
		Metrics:   kubeMetricsAddr,
		DNS:       bootstrap.DefaultDNS,
		AppProbes: probes,
	}, nil
}

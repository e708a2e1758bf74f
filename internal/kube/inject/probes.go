package inject

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"trellis.dev/trellis/internal/bootstrap"
)

// RewriteProbesKey, as an annotation with the value "false", keeps the app
// containers' HTTP probes as they are.
const RewriteProbesKey = "sidecar.trellis.dev/rewriteAppHTTPProbes"

// AppHealthPrefix is the path prefix of the rewritten probes on the proxy's health
// port: /app-health/<container>/<livez|readyz|startupz>.
const AppHealthPrefix = "/app-health/"

// rewriteProbes points the app containers' HTTP probes (liveness, readiness, startup)
// at the proxy's health port, which iptables leaves alone, so that the kubelet's
// probes still reach the app when its ports take only mutual TLS; the proxy sends the
// original request to the app on loopback. It returns the original probes by their new
// path, for the proxy (bootstrap.AppProbesEnv); nil when there are none. A probe on a
// named port that the container does not declare is refused.
func rewriteProbes(spec *corev1.PodSpec) (map[string]bootstrap.AppProbe, error) {
	out := map[string]bootstrap.AppProbe{}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, pr := range []struct {
			name, kind string
			probe      *corev1.Probe
		}{{"liveness", "livez", c.LivenessProbe}, {"readiness", "readyz", c.ReadinessProbe}, {"startup", "startupz", c.StartupProbe}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				continue
			}
			get := pr.probe.HTTPGet
			port, err := containerPort(c, get.Port)
			if err != nil {
				return nil, fmt.Errorf("container %s: %s probe: %w", c.Name, pr.name, err)
			}
			path := AppHealthPrefix + c.Name + "/" + pr.kind
			ap := bootstrap.AppProbe{Port: port, Path: get.Path, Scheme: string(get.Scheme), Host: get.Host,
				TimeoutSeconds: pr.probe.TimeoutSeconds}
			for _, h := range get.HTTPHeaders {
				ap.Headers = append(ap.Headers, bootstrap.HTTPHeader{Name: h.Name, Value: h.Value})
			}
			out[path] = ap
			pr.probe.HTTPGet = &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(HealthPort), Scheme: corev1.URISchemeHTTP}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// containerPort resolves a probe's port: a number, or the name of one of the
// container's ports.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal < 1 || port.IntVal > 65535 {
			return 0, fmt.Errorf("port %d is out of range 1..65535", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("port %q is not one of the container's named ports", port.StrVal)
}

// appProbesEnv is the proxy's environment variable holding the original probes.
func appProbesEnv(probes map[string]bootstrap.AppProbe) (corev1.EnvVar, error) {
	data, err := json.Marshal(probes)
	if err != nil {
		return corev1.EnvVar{}, err
	}
	return corev1.EnvVar{Name: bootstrap.AppProbesEnv, Value: string(data)}, nil
}

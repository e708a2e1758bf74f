package inject

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"trellis.dev/trellis/internal/bootstrap"
)

func httpProbe(port intstr.IntOrString, path string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}, TimeoutSeconds: 2}
}

// proxyProbes decodes the proxy's TRELLIS_APP_PROBES; nil when it has none.
func proxyProbes(t *testing.T, p *corev1.Pod) map[string]bootstrap.AppProbe {
	t.Helper()
	for _, c := range p.Spec.InitContainers {
		if c.Name != ProxyName {
			continue
		}
		for _, e := range c.Env {
			if e.Name == bootstrap.AppProbesEnv {
				var out map[string]bootstrap.AppProbe
				if err := json.Unmarshal([]byte(e.Value), &out); err != nil {
					t.Fatalf("%s: %v", bootstrap.AppProbesEnv, err)
				}
				return out
			}
		}
	}
	return nil
}

func TestRewriteProbes(t *testing.T) {
	pod := testPod(func(p *corev1.Pod) {
		app := &p.Spec.Containers[0]
		app.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
		app.ReadinessProbe = httpProbe(intstr.FromString("http"), "/ready")
		app.ReadinessProbe.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}}
		app.LivenessProbe = httpProbe(intstr.FromInt32(8081), "/live")
		app.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "admin", Image: "example.com/admin:1",
			LivenessProbe: httpProbe(intstr.FromInt32(9443), "/healthz")})
		p.Spec.Containers[1].LivenessProbe.HTTPGet.Scheme = corev1.URISchemeHTTPS
		p.Spec.Containers[1].LivenessProbe.HTTPGet.Host = "admin.local"
	})
	got, err := Pod(pod, Config{})
	if err != nil {
		t.Fatal(err)
	}
	rewritten := func(path string) *corev1.HTTPGetAction {
		return &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(HealthPort), Scheme: corev1.URISchemeHTTP}
	}
	app, admin := got.Spec.Containers[0], got.Spec.Containers[1]
	for _, c := range []struct {
		name      string
		got, want *corev1.HTTPGetAction
	}{
		{"app readiness", app.ReadinessProbe.HTTPGet, rewritten("/app-health/app/readyz")},
		{"app liveness", app.LivenessProbe.HTTPGet, rewritten("/app-health/app/livez")},
		{"admin liveness", admin.LivenessProbe.HTTPGet, rewritten("/app-health/admin/livez")},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if app.ReadinessProbe.TimeoutSeconds != 2 {
		t.Errorf("the probe's timing changed: %+v", app.ReadinessProbe)
	}
	if app.StartupProbe.TCPSocket == nil || app.StartupProbe.HTTPGet != nil {
		t.Errorf("a TCP probe was changed: %+v", app.StartupProbe)
	}
	if pod.Spec.Containers[0].ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("the input pod was changed")
	}
	want := map[string]bootstrap.AppProbe{
		"/app-health/app/readyz":  {Port: 8080, Path: "/ready", TimeoutSeconds: 2, Headers: []bootstrap.HTTPHeader{{Name: "X-Probe", Value: "1"}}},
		"/app-health/app/livez":   {Port: 8081, Path: "/live", TimeoutSeconds: 2},
		"/app-health/admin/livez": {Port: 9443, Path: "/healthz", Scheme: "HTTPS", Host: "admin.local", TimeoutSeconds: 2},
	}
	if diff := cmp.Diff(want, proxyProbes(t, got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", bootstrap.AppProbesEnv, diff)
	}

	// Opted out: the probes stay, the proxy gets none.
	pod.Annotations = map[string]string{RewriteProbesKey: "false"}
	got, err = Pod(pod, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Path != "/ready" || proxyProbes(t, got) != nil {
		t.Errorf("opted out: readiness %+v, proxy probes %v", p, proxyProbes(t, got))
	}

	// No HTTP probes: no variable.
	if got, err := Pod(testPod(nil), Config{}); err != nil || proxyProbes(t, got) != nil {
		t.Errorf("no probes: %v, %v", err, proxyProbes(t, got))
	}

	// A named port the container does not have.
	bad := testPod(func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = httpProbe(intstr.FromString("web"), "/") })
	if _, err := Pod(bad, Config{}); err == nil || !strings.Contains(err.Error(), `container app: readiness probe: port "web" is not one of the container's named ports`) {
		t.Errorf("unknown named port: %v", err)
	}
}

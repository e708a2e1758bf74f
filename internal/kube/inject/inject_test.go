package inject

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"trellis.dev/trellis/internal/bootstrap"
)

func testPod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-1", Namespace: "bookinfo", Labels: map[string]string{"app": "reviews"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "example.com/migrate:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "example.com/reviews:1"}},
			Volumes:        []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestPodInjects(t *testing.T) {
	pod := testPod(nil)
	got, err := Pod(pod, Config{Image: "example.com/trellis:test"})
	if err != nil {
		t.Fatalf("Pod: %v", err)
	}
	if got == pod {
		t.Fatal("Pod returned its input: not injected")
	}
	if diff := cmp.Diff(testPod(nil), pod); diff != "" {
		t.Errorf("Pod changed its input (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{InitName, ProxyName, "migrate"}, containerNames(got.Spec.InitContainers)); diff != "" {
		t.Errorf("init containers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"app"}, containerNames(got.Spec.Containers)); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	if got.Annotations[StatusAnnotation] != "injected" {
		t.Errorf("annotation %s = %q, want injected", StatusAnnotation, got.Annotations[StatusAnnotation])
	}

	initC, proxy := got.Spec.InitContainers[0], got.Spec.InitContainers[1]
	t.Run("init step", func(t *testing.T) {
		want := []string{"iptables", "--proxy-uid=1337", "--inbound-port=15006", "--outbound-port=15001", "--dns-port=15053",
			"--include-inbound-ports=*", "--exclude-inbound-ports=15020", "--include-outbound-ip-ranges=*"}
		if diff := cmp.Diff(want, initC.Args); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
		sc := initC.SecurityContext
		if diff := cmp.Diff([]corev1.Capability{"NET_ADMIN", "NET_RAW"}, sc.Capabilities.Add); diff != "" {
			t.Errorf("capabilities (-want +got):\n%s", diff)
		}
		if *sc.RunAsUser != 0 || initC.RestartPolicy != nil {
			t.Errorf("runAsUser %d, restartPolicy %v; want root and a plain init container", *sc.RunAsUser, initC.RestartPolicy)
		}
		if initC.Image != "example.com/trellis:test" {
			t.Errorf("image %q", initC.Image)
		}
	})
	t.Run("native sidecar", func(t *testing.T) {
		if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("restartPolicy %v, want Always", proxy.RestartPolicy)
		}
		if *proxy.SecurityContext.RunAsUser != 1337 {
			t.Errorf("runAsUser %d, want 1337", *proxy.SecurityContext.RunAsUser)
		}
		sp := proxy.StartupProbe
		if sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != HealthPath || sp.HTTPGet.Port.IntValue() != HealthPort {
			t.Errorf("startup probe %+v, want GET %s on %d", sp, HealthPath, HealthPort)
		}
		env := map[string]string{}
		for _, e := range proxy.Env {
			if e.ValueFrom != nil {
				env[e.Name] = "field " + e.ValueFrom.FieldRef.FieldPath
			} else {
				env[e.Name] = e.Value
			}
		}
		wantEnv := map[string]string{"POD_NAME": "field metadata.name", "POD_NAMESPACE": "field metadata.namespace",
			"SERVICE_ACCOUNT": "field spec.serviceAccountName", "POD_IP": "field status.podIP"}
		if len(pod.Labels) > 0 {
			labels, _ := json.Marshal(pod.Labels)
			wantEnv[bootstrap.LabelsEnv] = string(labels)
		}
		if diff := cmp.Diff(wantEnv, env); diff != "" {
			t.Errorf("env (-want +got):\n%s", diff)
		}
		if proxy.Resources.Requests.Cpu().IsZero() || proxy.Resources.Requests.Memory().IsZero() {
			t.Errorf("no resource requests: %+v", proxy.Resources)
		}
	})
	t.Run("token volume", func(t *testing.T) {
		i := slices.IndexFunc(got.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == TokenVolume })
		if i < 0 {
			t.Fatalf("no %s volume in %v", TokenVolume, got.Spec.Volumes)
		}
		tok := got.Spec.Volumes[i].Projected.Sources[0].ServiceAccountToken
		if tok.Audience != "trellis-ca" || tok.Path != "token" {
			t.Errorf("token projection %+v, want audience trellis-ca, path token", tok)
		}
	})
}

func TestPodAnnotations(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		wantArgs    []string // flags that must be among the init args
		wantErr     string
	}{
		{
			name: "excludes and includes",
			annotations: map[string]string{
				ExcludeInboundPorts:     "8080, 9090",
				ExcludeOutboundPorts:    "5432",
				ExcludeOutboundIPRanges: "10.0.0.0/8,192.168.0.0/16",
				IncludeOutboundIPRanges: "10.96.0.0/12",
				IncludeInboundPorts:     "9080",
			},
			wantArgs: []string{"--exclude-inbound-ports=15020,8080,9090", "--exclude-outbound-ports=5432",
				"--exclude-outbound-ip-ranges=10.0.0.0/8,192.168.0.0/16", "--include-outbound-ip-ranges=10.96.0.0/12",
				"--include-inbound-ports=9080"},
		},
		{name: "bad port", annotations: map[string]string{ExcludeOutboundPorts: "5432,http"}, wantErr: ExcludeOutboundPorts + `: "http" is not a port number`},
		{name: "port out of range", annotations: map[string]string{ExcludeInboundPorts: "70000"}, wantErr: ExcludeInboundPorts},
		{name: "bad CIDR", annotations: map[string]string{ExcludeOutboundIPRanges: "10.0.0.0"}, wantErr: ExcludeOutboundIPRanges + `: "10.0.0.0" is not a CIDR`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pod(testPod(func(p *corev1.Pod) { p.Annotations = tt.annotations }), Config{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Pod: %v", err)
			}
			args := got.Spec.InitContainers[0].Args
			for _, a := range tt.wantArgs {
				if !slices.Contains(args, a) {
					t.Errorf("init args %q lack %q", args, a)
				}
			}
		})
	}
}

func TestPodLeftAlone(t *testing.T) {
	injected, err := Pod(testPod(nil), Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pod      *corev1.Pod
		wantSkip string
	}{
		{name: "opt-out label", pod: testPod(func(p *corev1.Pod) { p.Labels[InjectKey] = "false" }), wantSkip: "opted out"},
		{name: "opt-out annotation", pod: testPod(func(p *corev1.Pod) { p.Annotations = map[string]string{InjectKey: "false"} }), wantSkip: "opted out"},
		{name: "already injected", pod: injected, wantSkip: "already injected"},
		{name: "host network", pod: testPod(func(p *corev1.Pod) { p.Spec.HostNetwork = true }), wantSkip: "host network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if why := Skip(&tt.pod.ObjectMeta, &tt.pod.Spec); !strings.Contains(why, tt.wantSkip) {
				t.Errorf("Skip = %q, want it to say %q", why, tt.wantSkip)
			}
			got, err := Pod(tt.pod, Config{})
			if err != nil {
				t.Fatalf("Pod: %v", err)
			}
			if got != tt.pod {
				t.Errorf("Pod changed a pod it must leave alone")
			}
		})
	}
}

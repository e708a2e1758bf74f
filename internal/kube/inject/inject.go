package inject

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"trellis.dev/trellis/internal/bootstrap"
)

// Names of what Pod adds.
const (
	InitName    = "trellis-init"
	ProxyName   = "trellis-proxy"
	TokenVolume = "trellis-token"
	DataVolume  = "trellis-data"
	CAVolume    = "trellis-ca"
	// RootCertConfigMap is the ConfigMap the leading control plane keeps in every
	// namespace labelled for injection, holding its trust bundle under RootCertKey.
	RootCertConfigMap = "trellis-ca-root-cert"
	RootCertKey       = "root-cert.pem"
)

// Annotations and labels Pod reads and writes.
const (
	// InjectKey, as a label or an annotation with the value "false", opts a pod out.
	InjectKey = "sidecar.trellis.dev/inject"
	// StatusAnnotation marks an injected pod.
	StatusAnnotation = "sidecar.trellis.dev/status"

	ExcludeInboundPorts     = "traffic.sidecar.trellis.dev/excludeInboundPorts"
	IncludeInboundPorts     = "traffic.sidecar.trellis.dev/includeInboundPorts"
	ExcludeOutboundPorts    = "traffic.sidecar.trellis.dev/excludeOutboundPorts"
	ExcludeOutboundIPRanges = "traffic.sidecar.trellis.dev/excludeOutboundIPRanges"
	IncludeOutboundIPRanges = "traffic.sidecar.trellis.dev/includeOutboundIPRanges"
)

// Ports and paths of the injected proxy (DESIGN.md §5).
const (
	OutboundPort = 15001
	InboundPort  = 15006
	HealthPort   = 15020
	// DNSPort is the proxy's DNS server (bootstrap.DefaultDNS), where trellis-init
	// redirects the pod's DNS queries.
	DNSPort    = 15053
	HealthPath = "/healthz/ready"
	// TokenDir holds the projected service-account token, file "token".
	TokenDir = "/var/run/secrets/trellis/tokens"
	// DataDir is the proxy's writable directory (an in-memory emptyDir).
	DataDir = "/var/lib/trellis"
	// CADir holds the trust bundle (RootCertConfigMap), file RootCertKey, which
	// verifies the control plane's xDS certificate.
	CADir = "/var/run/secrets/trellis/ca"
)

// Defaults of Config.
const (
	DefaultImage      = "trellis.dev/trellis:dev"
	DefaultXDSAddress = "trellis.trellis-system.svc:15012"
	DefaultProxyUID   = 1337
	DefaultAudience   = "trellis-ca"
)

// Config is what the injected containers are made of.
type Config struct {
	// Image is the trellis image both containers run. Default trellis.dev/trellis:dev.
	Image string
	// XDSAddress is the control plane's xDS and CA address (TLS). Default
	// trellis.trellis-system.svc:15012.
	XDSAddress string
	// ProxyUID is the proxy's user ID; iptables leaves its traffic alone. Default 1337.
	ProxyUID int64
	// TokenAudience is the audience of the proxy's service-account token, which the CA
	// checks with a TokenReview. Default trellis-ca.
	TokenAudience string
	// ProxyResources of the proxy container. Default: requests 100m CPU and 128Mi,
	// limit 1Gi memory.
	ProxyResources *corev1.ResourceRequirements
}

func (c Config) withDefaults() Config {
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.XDSAddress == "" {
		c.XDSAddress = DefaultXDSAddress
	}
	if c.ProxyUID == 0 {
		c.ProxyUID = DefaultProxyUID
	}
	if c.TokenAudience == "" {
		c.TokenAudience = DefaultAudience
	}
	if c.ProxyResources == nil {
		c.ProxyResources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		}
	}
	return c
}

// Pod returns a copy of pod with the sidecar injected, or pod itself when it is not to
// be injected (see Skip). An error means an annotation is malformed.
func Pod(pod *corev1.Pod, cfg Config) (*corev1.Pod, error) {
	if Skip(&pod.ObjectMeta, &pod.Spec) != "" {
		return pod, nil
	}
	out := pod.DeepCopy()
	if err := inject(&out.ObjectMeta, &out.Spec, cfg); err != nil {
		return nil, fmt.Errorf("injecting pod %s: %w", podName(pod), err)
	}
	return out, nil
}

// Template injects a pod template in place, unless Skip says not to.
func Template(t *corev1.PodTemplateSpec, cfg Config) error {
	if Skip(&t.ObjectMeta, &t.Spec) != "" {
		return nil
	}
	return inject(&t.ObjectMeta, &t.Spec, cfg)
}

func podName(p *corev1.Pod) string {
	name := p.Name
	if name == "" {
		name = p.GenerateName + "*"
	}
	return p.Namespace + "/" + name
}

// Skip says why a pod is not to be injected ("" when it is): it is injected already,
// it opts out, or it uses the host's network.
func Skip(meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
	switch {
	case meta.Annotations[StatusAnnotation] != "" || hasContainer(spec.InitContainers, ProxyName) || hasContainer(spec.Containers, ProxyName):
		return "already injected"
	case meta.Labels[InjectKey] == "false" || meta.Annotations[InjectKey] == "false":
		return "opted out with " + InjectKey + `: "false"`
	case spec.HostNetwork:
		return "uses the host network"
	}
	return ""
}

func hasContainer(cs []corev1.Container, name string) bool {
	return slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name })
}

func inject(meta *metav1.ObjectMeta, spec *corev1.PodSpec, cfg Config) error {
	cfg = cfg.withDefaults()
	initC, err := initContainer(meta.Annotations, cfg)
	if err != nil {
		return err
	}
	proxyC := proxyContainer(cfg)
	if meta.Annotations[RewriteProbesKey] != "false" {
		probes, err := rewriteProbes(spec)
		if err != nil {
			return err
		}
		if probes != nil {
			env, err := appProbesEnv(probes)
			if err != nil {
				return err
			}
			proxyC.Env = append(proxyC.Env, env)
		}
	}
	if len(meta.Labels) > 0 {
		labels, err := json.Marshal(meta.Labels) // keys sorted: the same pod, the same env
		if err != nil {
			return fmt.Errorf("encoding the pod's labels for the sidecar: %w", err)
		}
		proxyC.Env = append(proxyC.Env, corev1.EnvVar{Name: bootstrap.LabelsEnv, Value: string(labels)})
	}
	spec.InitContainers = append([]corev1.Container{initC, proxyC}, spec.InitContainers...)
	spec.Volumes = append(spec.Volumes,
		corev1.Volume{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: cfg.TokenAudience, ExpirationSeconds: ptr.To(int64(43200)), Path: "token",
			}}},
		}}},
		corev1.Volume{Name: DataVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: CAVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap},
		}}},
	)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[StatusAnnotation] = "injected"
	return nil
}

// initContainer is trellis-init: `trellis iptables` with the pod's port and CIDR
// annotations.
func initContainer(annotations map[string]string, cfg Config) (corev1.Container, error) {
	args := []string{
		"iptables",
		"--proxy-uid=" + strconv.FormatInt(cfg.ProxyUID, 10),
		"--inbound-port=" + strconv.Itoa(InboundPort),
		"--outbound-port=" + strconv.Itoa(OutboundPort),
		"--dns-port=" + strconv.Itoa(DNSPort),
	}
	flags := []struct {
		annotation, flag, def string
		check                 func(string) error
		always                string // always added to the list
	}{
		{IncludeInboundPorts, "--include-inbound-ports", "*", checkPorts, ""},
		{ExcludeInboundPorts, "--exclude-inbound-ports", "", checkPorts, strconv.Itoa(HealthPort)},
		{ExcludeOutboundPorts, "--exclude-outbound-ports", "", checkPorts, ""},
		{IncludeOutboundIPRanges, "--include-outbound-ip-ranges", "*", checkCIDRs, ""},
		{ExcludeOutboundIPRanges, "--exclude-outbound-ip-ranges", "", checkCIDRs, ""},
	}
	for _, f := range flags {
		v, set := annotations[f.annotation]
		v = strings.Join(strings.Fields(strings.ReplaceAll(v, ",", " ")), ",")
		if set {
			if err := f.check(v); err != nil {
				return corev1.Container{}, fmt.Errorf("annotation %s: %w", f.annotation, err)
			}
		} else {
			v = f.def
		}
		if f.always != "" {
			v = strings.Trim(f.always+","+v, ",")
		}
		if v != "" {
			args = append(args, f.flag+"="+v)
		}
	}
	return corev1.Container{
		Name:  InitName,
		Image: cfg.Image,
		Args:  args,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr.To(int64(0)),
			RunAsGroup:               ptr.To(int64(0)),
			RunAsNonRoot:             ptr.To(false),
			Privileged:               ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}, nil
}

// proxyContainer is trellis-proxy, the native sidecar.
func proxyContainer(cfg Config) corev1.Container {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	health := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: HealthPath, Port: intstr.FromInt32(HealthPort)}},
			PeriodSeconds:    period,
			TimeoutSeconds:   3,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:          ProxyName,
		Image:         cfg.Image,
		RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
		Args: []string{
			"proxy",
			"--kubernetes",
			"--xds-address=" + cfg.XDSAddress,
			"--xds-ca-file=" + CADir + "/" + RootCertKey,
			"--token-file=" + TokenDir + "/token",
			"--data-dir=" + DataDir,
		},
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
			fieldEnv("POD_IP", "status.podIP"),
		},
		Ports: []corev1.ContainerPort{{Name: "trellis-health", ContainerPort: HealthPort, Protocol: corev1.ProtocolTCP}},
		// The startup probe holds the app containers back until the proxy is ready:
		// up to 10 minutes, checked every second.
		StartupProbe:   health(1, 600),
		ReadinessProbe: health(5, 3),
		Resources:      *cfg.ProxyResources.DeepCopy(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: TokenVolume, MountPath: TokenDir, ReadOnly: true},
			{Name: DataVolume, MountPath: DataDir},
			{Name: CAVolume, MountPath: CADir, ReadOnly: true},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr.To(cfg.ProxyUID),
			RunAsGroup:               ptr.To(cfg.ProxyUID),
			RunAsNonRoot:             ptr.To(true),
			Privileged:               ptr.To(false),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

// checkPorts accepts "*" or a comma-separated list of ports 1..65535.
func checkPorts(v string) error {
	if v == "*" || v == "" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port number in 1..65535", p)
		}
	}
	return nil
}

// checkCIDRs accepts "*" or a comma-separated list of CIDRs such as 10.0.0.0/8.
func checkCIDRs(v string) error {
	if v == "*" || v == "" {
		return nil
	}
	for _, c := range strings.Split(v, ",") {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", c)
		}
	}
	return nil
}

package install

import (
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"trellis.dev/trellis/internal/kube/inject"
)

// commonLabels are on every object Install creates.
func commonLabels() map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    Name,
		"app.kubernetes.io/part-of": Name,
		ManagedByLabel:              Name,
	}
}

// selectorLabels select the control plane's pods.
func selectorLabels() map[string]string { return map[string]string{"app": Name} }

func objectMeta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: commonLabels()}
}

// typedObjects are the objects of cfg (already defaulted) in apply order, CRDs first,
// webhook configurations last.
func typedObjects(cfg Config) []runtime.Object {
	var out []runtime.Object
	for _, crd := range CRDs() {
		out = append(out, crd)
	}
	ns := cfg.Namespace
	out = append(out,
		&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: objectMeta(ns, "")},
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: objectMeta(Name, ns)},
		clusterRole(),
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: objectMeta(Name, ""),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Name, Namespace: ns}},
		},
		role(ns),
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"),
			ObjectMeta: objectMeta(Name, ns),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Name, Namespace: ns}},
		},
		service(ns),
	)
	if cfg.ControlPlaneURL == "" {
		out = append(out, deployment(cfg), podDisruptionBudget(ns))
	}
	if cfg.RateLimit {
		out = append(out, rateLimitRBAC(ns)...)
		out = append(out, rateLimitService(ns), rateLimitDeployment(cfg))
	}
	return append(out, injectorConfig(cfg), validatorConfig(cfg))
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// clusterRole is what the control plane reads cluster-wide: service discovery, the
// config kinds (and their status), TokenReviews for CA requests, and the webhook
// configurations whose caBundle it keeps current.
func clusterRole() *rbacv1.ClusterRole {
	read := []string{"get", "list", "watch"}
	groups, status := map[string][]string{}, map[string][]string{}
	var order []string
	for _, k := range Kinds() {
		if _, seen := groups[k.Group]; !seen {
			order = append(order, k.Group)
		}
		groups[k.Group] = append(groups[k.Group], k.Plural)
		if k.Status {
			status[k.Group] = append(status[k.Group], k.Plural+"/status")
		}
	}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "endpoints", "pods", "namespaces", "serviceaccounts", "nodes"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
	}
	for _, g := range order {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: groups[g], Verbs: read})
		if len(status[g]) > 0 {
			rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{g}, Resources: status[g], Verbs: []string{"get", "update", "patch"}})
		}
	}
	rules = append(rules,
		rbacv1.PolicyRule{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: read},
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"}, Verbs: read},
		rbacv1.PolicyRule{
			APIGroups:     []string{"admissionregistration.k8s.io"},
			Resources:     []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"},
			ResourceNames: []string{InjectorName, ValidatorName},
			Verbs:         []string{"update", "patch"},
		},
		// The trust bundle ConfigMap in every meshed namespace (injected sidecars
		// verify the xDS certificate with it).
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{
			APIGroups:     []string{""},
			Resources:     []string{"configmaps"},
			ResourceNames: []string{inject.RootCertConfigMap},
			Verbs:         []string{"get", "update"},
		},
	)
	return &rbacv1.ClusterRole{
		TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"),
		ObjectMeta: objectMeta(Name, ""),
		Rules:      rules,
	}
}

// role is what the control plane manages in its own namespace: the leader-election
// Lease, the CA root and serving certificate Secrets, and events.
func role(ns string) *rbacv1.Role {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	return &rbacv1.Role{
		TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "Role"),
		ObjectMeta: objectMeta(Name, ns),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		},
	}
}

func service(ns string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(Name, ns),
		Spec: corev1.ServiceSpec{
			Selector: selectorLabels(),
			Ports: []corev1.ServicePort{
				{Name: "grpc-xds", Port: XDSPort, TargetPort: intstr.FromInt32(XDSPort), Protocol: corev1.ProtocolTCP},
				{Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(WebhookPort), Protocol: corev1.ProtocolTCP},
				{Name: "http-monitoring", Port: MonitoringPort, TargetPort: intstr.FromInt32(MonitoringPort), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// controlDataDir is the control plane's data directory in its pod, an in-memory
// emptyDir (the root file system is read-only): it holds the trust bundle file. The CA
// root itself is in the Secret trellis-ca.
const controlDataDir = "/var/lib/trellis"

func deployment(cfg Config) *appsv1.Deployment {
	args := []string{
		"control",
		fmt.Sprintf("--secure-xds-addr=:%d", XDSPort),
		fmt.Sprintf("--webhook-addr=:%d", WebhookPort),
		fmt.Sprintf("--monitoring-addr=:%d", MonitoringPort),
		"--data-dir=" + controlDataDir,
		"--proxy-image=" + cfg.Image,
	}
	if cfg.RateLimit {
		args = append(args, "--ratelimit-addr="+RateLimitAddr(cfg.Namespace))
	}
	liveness := readyProbe(10)
	liveness.InitialDelaySeconds = 15
	liveness.FailureThreshold = 6
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta(Name, cfg.Namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(cfg.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels()},
			Strategy: rollingUpdate(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(selectorLabels())},
				Spec: corev1.PodSpec{
					ServiceAccountName: Name,
					Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
						EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory},
					}}},
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1337)), RunAsGroup: ptr.To(int64(1337)),
						FSGroup: ptr.To(int64(1337)),
					},
					Containers: []corev1.Container{{
						Name:  "control",
						Image: cfg.Image,
						Args:  args,
						Env: []corev1.EnvVar{
							fieldEnv("POD_NAME", "metadata.name"),
							fieldEnv("POD_NAMESPACE", "metadata.namespace"),
						},
						Ports: []corev1.ContainerPort{
							{Name: "grpc-xds", ContainerPort: XDSPort, Protocol: corev1.ProtocolTCP},
							{Name: "https-webhook", ContainerPort: WebhookPort, Protocol: corev1.ProtocolTCP},
							{Name: "http-monitoring", ContainerPort: MonitoringPort, Protocol: corev1.ProtocolTCP},
						},
						VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: controlDataDir}},
						ReadinessProbe: readyProbe(5),
						LivenessProbe:  liveness,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("100m"),
								corev1.ResourceMemory: resource.MustParse("128Mi"),
							},
							Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
						},
						SecurityContext: restrictedContainer(),
					}},
				},
			},
		},
	}
}

func podDisruptionBudget(ns string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   typeMeta("policy/v1", "PodDisruptionBudget"),
		ObjectMeta: objectMeta(Name, ns),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: selectorLabels()},
		},
	}
}

// clientConfig points a webhook at path on the control plane: its Service, or
// ControlPlaneURL.
func clientConfig(cfg Config, path string) admissionregistrationv1.WebhookClientConfig {
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: slices.Clone(cfg.CABundle)}
	if cfg.ControlPlaneURL != "" {
		cc.URL = ptr.To(cfg.ControlPlaneURL + path)
	} else {
		cc.Service = &admissionregistrationv1.ServiceReference{Namespace: cfg.Namespace, Name: Name, Path: ptr.To(path), Port: ptr.To(int32(443))}
	}
	return cc
}

func injectorConfig(cfg Config) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   typeMeta("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
		ObjectMeta: objectMeta(InjectorName, ""),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "inject.sidecar.trellis.dev",
			ClientConfig: clientConfig(cfg, InjectPath),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{InjectionLabel: "enabled"}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: InjectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To(int32(10)),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
}

func validatorConfig(cfg Config) *admissionregistrationv1.ValidatingWebhookConfiguration {
	byGroup := map[string][]string{}
	var groups []string
	for _, k := range Kinds() {
		if _, seen := byGroup[k.Group]; !seen {
			groups = append(groups, k.Group)
		}
		byGroup[k.Group] = append(byGroup[k.Group], k.Plural)
	}
	var rules []admissionregistrationv1.RuleWithOperations
	for _, g := range groups {
		rules = append(rules, admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{g}, APIVersions: []string{"*"}, Resources: byGroup[g],
				Scope: ptr.To(admissionregistrationv1.NamespacedScope),
			},
		})
	}
	failure := admissionregistrationv1.Ignore
	if len(cfg.CABundle) > 0 {
		failure = admissionregistrationv1.Fail
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   typeMeta("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
		ObjectMeta: objectMeta(ValidatorName, ""),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validation.trellis.dev",
			ClientConfig:            clientConfig(cfg, ValidatePath),
			Rules:                   rules,
			FailurePolicy:           ptr.To(failure),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To(int32(10)),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

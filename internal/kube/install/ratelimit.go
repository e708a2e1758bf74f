package install

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The rate-limit service (`trellis ratelimit`), installed with Config.RateLimit.
const (
	// RateLimitName is the name of its Deployment and Service.
	RateLimitName = "trellis-ratelimit"
	// RateLimitPort serves the RLS gRPC API (envoy.service.ratelimit.v3).
	RateLimitPort = 8081
	// RateLimitReplicas of its Deployment; they share their counters in Redis.
	RateLimitReplicas = 2
	// RedisPasswordSecret is the Secret (key "password") the rate-limit service reads
	// the Redis password from, when it exists, as $TRELLIS_REDIS_PASSWORD.
	RedisPasswordSecret = "trellis-redis"
)

// RateLimitAddr is the address the control plane gives the sidecars for the
// rate-limit service installed in namespace ns.
func RateLimitAddr(ns string) string {
	return fmt.Sprintf("%s.%s.svc:%d", RateLimitName, ns, RateLimitPort)
}

// rateLimitSelector selects the rate-limit service's pods.
func rateLimitSelector() map[string]string { return map[string]string{"app": RateLimitName} }

func rateLimitService(ns string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: objectMeta(RateLimitName, ns),
		Spec: corev1.ServiceSpec{
			Selector: rateLimitSelector(),
			Ports: []corev1.ServicePort{
				{Name: "grpc", Port: RateLimitPort, TargetPort: intstr.FromInt32(RateLimitPort), Protocol: corev1.ProtocolTCP},
			},
		},
	}
}

// rateLimitRBAC is the rate-limit service's identity: a ServiceAccount
// (RateLimitName) allowed by a ClusterRole and its binding to read RateLimitPolicies,
// and nothing else.
func rateLimitRBAC(ns string) []runtime.Object {
	return []runtime.Object{
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: objectMeta(RateLimitName, ns)},
		&rbacv1.ClusterRole{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"),
			ObjectMeta: objectMeta(RateLimitName, ""),
			Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{TrellisGroup}, Resources: []string{"ratelimitpolicies"},
				Verbs: []string{"get", "list", "watch"},
			}},
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: objectMeta(RateLimitName, ""),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: RateLimitName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: RateLimitName, Namespace: ns}},
		},
	}
}

// rateLimitDeployment runs `trellis ratelimit` with the Redis store, failing open. In
// the pod (KUBERNETES_SERVICE_HOST set, no --config) it watches the RateLimitPolicies
// of the API server, as the ServiceAccount RateLimitName.
func rateLimitDeployment(cfg Config) *appsv1.Deployment {
	liveness := readyProbe(10)
	liveness.InitialDelaySeconds = 5
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: objectMeta(RateLimitName, cfg.Namespace),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(RateLimitReplicas)),
			Selector: &metav1.LabelSelector{MatchLabels: rateLimitSelector()},
			Strategy: rollingUpdate(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels(rateLimitSelector())},
				Spec: corev1.PodSpec{
					ServiceAccountName:           RateLimitName,
					AutomountServiceAccountToken: ptr.To(true),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(1337)), RunAsGroup: ptr.To(int64(1337)),
					},
					Containers: []corev1.Container{{
						Name:  "ratelimit",
						Image: cfg.Image,
						Args: []string{
							"ratelimit",
							"--addr", fmt.Sprintf(":%d", RateLimitPort),
							"--monitoring-addr", fmt.Sprintf(":%d", MonitoringPort),
							"--store", "redis",
							"--redis-addr", cfg.RedisAddr,
							"--failure-mode", "open",
						},
						Env: []corev1.EnvVar{{Name: "TRELLIS_REDIS_PASSWORD", ValueFrom: &corev1.EnvVarSource{
							SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: RedisPasswordSecret},
								Key:                  "password", Optional: ptr.To(true),
							},
						}}},
						Ports: []corev1.ContainerPort{
							{Name: "grpc", ContainerPort: RateLimitPort, Protocol: corev1.ProtocolTCP},
							{Name: "http-monitoring", ContainerPort: MonitoringPort, Protocol: corev1.ProtocolTCP},
						},
						ReadinessProbe: readyProbe(5),
						LivenessProbe:  liveness,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("50m"),
								corev1.ResourceMemory: resource.MustParse("64Mi"),
							},
							Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						SecurityContext: restrictedContainer(),
					}},
				},
			},
		},
	}
}

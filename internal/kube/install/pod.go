package install

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The parts of a pod that the Deployments install creates (the control plane's,
// the rate-limit service's) have in common.

// podLabels are the labels of a pod that selector selects: selector's, the common
// labels, and the opt-out of sidecar injection.
func podLabels(selector map[string]string) map[string]string {
	labels := selector
	labels[InjectLabel] = "false"
	for k, v := range commonLabels() {
		labels[k] = v
	}
	return labels
}

// rollingUpdate replaces pods one at a time, starting the new one first.
func rollingUpdate() appsv1.DeploymentStrategy {
	return appsv1.DeploymentStrategy{
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)),
			MaxSurge:       ptr.To(intstr.FromInt32(1)),
		},
	}
}

// readyProbe asks /ready on the monitoring port every period seconds.
func readyProbe(period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(MonitoringPort)}},
		PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: 3,
	}
}

// restrictedContainer is the security context of every container: no privilege
// escalation, a read-only root file system, no capabilities.
func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

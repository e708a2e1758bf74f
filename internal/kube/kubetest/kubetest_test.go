package kubetest

import (
	"context"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestStart(t *testing.T) {
	c := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("admin may do anything", func(t *testing.T) {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"},
		}}
		got, err := c.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating access review: %v", err)
		}
		if !got.Status.Allowed {
			t.Errorf("admin is not allowed everything: %+v", got.Status)
		}
	})

	t.Run("kubeconfig file works", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		if err != nil {
			t.Fatalf("loading %s: %v", c.Kubeconfig, err)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatalf("building client: %v", err)
		}
		if _, err := client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("getting namespace default: %v", err)
		}
	})

	t.Run("pods are admitted with their service account", func(t *testing.T) {
		c.CreateNamespace(t, "kubetest", map[string]string{"team": "mesh"})
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
		got, err := c.Client.CoreV1().Pods("kubetest").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating pod: %v", err)
		}
		if got.Spec.ServiceAccountName != "default" {
			t.Errorf("serviceAccountName = %q, want default", got.Spec.ServiceAccountName)
		}
	})
}

package cabundle_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"trellis.dev/trellis/internal/kube/cabundle"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
)

func TestKeeper(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	bundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	keeper, err := cabundle.New(cabundle.Config{Client: cluster.Client, Mutating: install.InjectorName,
		Validating: install.ValidatorName, Bundle: func() []byte { return bundle }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Not installed yet: nothing to do, no error.
	if err := keeper.Sync(ctx); err != nil {
		t.Fatalf("Sync before install: %v", err)
	}

	objs, err := install.Objects(install.Config{ControlPlaneURL: "https://127.0.0.1:15017"})
	if err != nil {
		t.Fatal(err)
	}
	var webhooks []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "MutatingWebhookConfiguration" || o.GetKind() == "ValidatingWebhookConfiguration" {
			webhooks = append(webhooks, o)
		}
	}
	installer, err := install.NewClient(cluster.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := installer.Apply(ctx, webhooks); err != nil {
		t.Fatal(err)
	}
	admission := cluster.Client.AdmissionregistrationV1()
	state := func() (mutating, validating []byte, policy admissionregistrationv1.FailurePolicyType, versions string) {
		m, err := admission.MutatingWebhookConfigurations().Get(ctx, install.InjectorName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := admission.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle, *v.Webhooks[0].FailurePolicy,
			m.ResourceVersion + "/" + v.ResourceVersion
	}
	if _, _, policy, _ := state(); policy != admissionregistrationv1.Ignore {
		t.Fatalf("installed without a caBundle, the validator's failurePolicy is %s, want Ignore", policy)
	}
	if err := keeper.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	m, v, policy, versions := state()
	if !bytes.Equal(m, bundle) || !bytes.Equal(v, bundle) || policy != admissionregistrationv1.Fail {
		t.Fatalf("after Sync: mutating caBundle %q, validating %q, failurePolicy %s; want the bundle twice and Fail", m, v, policy)
	}
	// In sync: nothing is written.
	if err := keeper.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, _, again := state(); again != versions {
		t.Errorf("a second Sync updated the configurations (%s -> %s)", versions, again)
	}
	// A new bundle (a root rotation) is written on the next Sync.
	bundle = append(bundle, bundle...)
	if err := keeper.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if m, v, _, _ := state(); !bytes.Equal(m, bundle) || !bytes.Equal(v, bundle) {
		t.Errorf("after a bundle change, the caBundles are not the new bundle")
	}
}

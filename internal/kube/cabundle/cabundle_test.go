package cabundle_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
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

func TestKeeperRootCert(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	var mu sync.Mutex
	bundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	current := func() []byte { mu.Lock(); defer mu.Unlock(); return bundle }
	cluster.CreateNamespace(t, "shop", map[string]string{install.InjectionLabel: "enabled"})
	cluster.CreateNamespace(t, "plain", nil)
	keeper, err := cabundle.New(cabundle.Config{Client: cluster.Client, Bundle: current, Logger: log,
		Interval: time.Hour, // only the namespace watch and Trigger make it check
		RootCert: &cabundle.RootCert{Name: "trellis-ca-root-cert", Key: "root-cert.pem",
			Selector: install.InjectionLabel + "=enabled", Labels: map[string]string{"app": "trellis"}}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); keeper.Run(runCtx) }()
	defer func() { stop(); <-done }()

	configMaps := cluster.Client.CoreV1().ConfigMaps
	holds := func(ns string, want []byte) func() error {
		return func() error {
			cm, err := configMaps(ns).Get(ctx, "trellis-ca-root-cert", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := cm.Data["root-cert.pem"]; got != string(want) {
				return fmt.Errorf("ConfigMap %s/trellis-ca-root-cert holds %q", ns, got)
			}
			return nil
		}
	}
	waitFor(t, "the ConfigMap in shop", holds("shop", bundle))
	if _, err := configMaps("plain").Get(ctx, "trellis-ca-root-cert", metav1.GetOptions{}); err == nil {
		t.Errorf("a namespace without the injection label got the ConfigMap")
	}

	// Labelled later: the namespace watch brings the ConfigMap at once (the interval is
	// an hour).
	ns, err := cluster.Client.CoreV1().Namespaces().Get(ctx, "plain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels = map[string]string{install.InjectionLabel: "enabled"}
	if _, err := cluster.Client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ConfigMap in the newly labelled namespace", holds("plain", bundle))

	// A new bundle (a root rotation) reaches every ConfigMap on Trigger.
	mu.Lock()
	bundle = append(bytes.Clone(bundle), bundle...)
	mu.Unlock()
	keeper.Trigger()
	waitFor(t, "the rotated bundle in shop", holds("shop", current()))
	waitFor(t, "the rotated bundle in plain", holds("plain", current()))
}

// waitFor polls f until it succeeds, failing the test after 20s with its last error.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package cabundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// RootCert names the ConfigMap that carries the trust bundle into each meshed
// namespace, where injected sidecars mount it to verify the control plane's xDS
// certificate (docs/kubernetes.md "Injection").
type RootCert struct {
	// Name of the ConfigMap and Key of the bundle in it.
	Name, Key string
	// Selector chooses the namespaces (a label selector: trellis-injection=enabled).
	Selector string
	// Labels are put on the ConfigMaps it creates.
	Labels map[string]string
}

// syncRootCerts makes the ConfigMap of every selected namespace hold bundle.
func (k *Keeper) syncRootCerts(ctx context.Context, bundle []byte) error {
	rc := k.cfg.RootCert
	if rc == nil {
		return nil
	}
	nss, err := k.cfg.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: rc.Selector})
	if err != nil {
		return fmt.Errorf("listing namespaces %s: %w", rc.Selector, err)
	}
	var errs []error
	for _, ns := range nss.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		errs = append(errs, k.syncRootCert(ctx, ns.Name, bundle))
	}
	return errors.Join(errs...)
}

func (k *Keeper) syncRootCert(ctx context.Context, ns string, bundle []byte) error {
	rc := k.cfg.RootCert
	client := k.cfg.Client.CoreV1().ConfigMaps(ns)
	cm, err := client.Get(ctx, rc.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: rc.Name, Namespace: ns, Labels: rc.Labels},
			Data:       map[string]string{rc.Key: string(bundle)},
		}
		if _, err := client.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating ConfigMap %s/%s: %w", ns, rc.Name, err)
		}
		k.cfg.Logger.Info("created the trust bundle ConfigMap", "namespace", ns, "name", rc.Name)
		return nil
	case err != nil:
		return fmt.Errorf("reading ConfigMap %s/%s: %w", ns, rc.Name, err)
	}
	if bytes.Equal([]byte(cm.Data[rc.Key]), bundle) {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[rc.Key] = string(bundle)
	if _, err := client.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating ConfigMap %s/%s: %w", ns, rc.Name, err)
	}
	k.cfg.Logger.Info("updated the trust bundle ConfigMap", "namespace", ns, "name", rc.Name)
	return nil
}

// watchNamespaces triggers a check whenever a selected namespace appears or changes,
// so that a namespace labelled for injection gets its ConfigMap at once, until ctx
// ends.
func (k *Keeper) watchNamespaces(ctx context.Context) {
	if k.cfg.RootCert == nil {
		return
	}
	factory := informers.NewSharedInformerFactoryWithOptions(k.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = k.cfg.RootCert.Selector }))
	inf := factory.Core().V1().Namespaces().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { k.Trigger() },
		UpdateFunc: func(any, any) { k.Trigger() },
	}); err != nil {
		k.cfg.Logger.Warn("watching namespaces", "err", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

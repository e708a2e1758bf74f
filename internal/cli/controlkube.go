package cli

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"trellis.dev/trellis/internal/control"
	"trellis.dev/trellis/internal/kube/inject"
	"trellis.dev/trellis/internal/kube/install"
)

// controlKubeFlags are the flags of `trellis control` for Kubernetes mode.
type controlKubeFlags struct {
	kubeconfig  string
	namespace   string
	webhookAddr string
	proxyImage  string
	xdsAddress  string
}

func addControlKubeFlags(f *pflag.FlagSet) *controlKubeFlags {
	k := &controlKubeFlags{}
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "run on Kubernetes with this kubeconfig; in a pod (KUBERNETES_SERVICE_HOST set) the in-cluster configuration is used without it")
	f.StringVar(&k.namespace, "namespace", "", "Kubernetes mode: the control plane's namespace (its Service, Lease and CA Secret); default $POD_NAMESPACE, else "+install.DefaultNamespace)
	f.StringVar(&k.webhookAddr, "webhook-addr", control.DefaultWebhookAddr, "Kubernetes mode: address to serve the admission webhooks (HTTPS) on")
	f.StringVar(&k.proxyImage, "proxy-image", inject.DefaultImage, "Kubernetes mode: the image the injection webhook gives the sidecar and its init step")
	f.StringVar(&k.xdsAddress, "proxy-xds-address", "", "Kubernetes mode: the control plane's address injected sidecars connect to (default trellis.<namespace>.svc:15012)")
	return k
}

// config is the Kubernetes mode's configuration, or nil for local mode (no
// --kubeconfig and not in a pod).
func (k *controlKubeFlags) config(logger *slog.Logger) (*control.Kubernetes, error) {
	var rc *rest.Config
	var err error
	switch {
	case k.kubeconfig != "":
		rc, err = restConfig(k.kubeconfig)
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		rc, err = rest.InClusterConfig()
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to Kubernetes: %w", err)
	}
	// client-go logs through klog: send it where everything else goes.
	klog.SetSlogLogger(logger)
	ns := cmp.Or(k.namespace, os.Getenv("POD_NAMESPACE"), install.DefaultNamespace)
	identity := os.Getenv("POD_NAME")
	if identity == "" {
		if identity, err = os.Hostname(); err != nil {
			return nil, errors.New("cannot tell this replica's name: set POD_NAME")
		}
	}
	return &control.Kubernetes{
		Config:      rc,
		Namespace:   ns,
		Identity:    identity,
		WebhookAddr: k.webhookAddr,
		Inject: inject.Config{
			Image:      k.proxyImage,
			XDSAddress: cmp.Or(k.xdsAddress, fmt.Sprintf("%s.%s.svc:%d", install.Name, ns, install.XDSPort)),
		},
	}, nil
}

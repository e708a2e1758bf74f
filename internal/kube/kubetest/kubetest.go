package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Version is the Kubernetes version hack/k8s-tools.sh builds.
const Version = "v1.37.2"

// ServiceCIDR is the API server's --service-cluster-ip-range, where Services get their
// ClusterIPs. Nothing on the test machine uses it; tests that run pods in network
// namespaces route it inside them.
const ServiceCIDR = "10.96.0.0/16"

// startTimeout bounds how long Start waits for the API server to be ready; the first
// start on a busy 2-core machine takes tens of seconds.
const startTimeout = 3 * time.Minute

// BinDir is where the kube-apiserver and etcd binaries are: $TRELLIS_K8S_BIN, else
// $HOME/.cache/trellis/k8s/<Version> (/tmp for $HOME when it is unset), as
// hack/k8s-tools.sh builds them.
func BinDir() string {
	if d := os.Getenv("TRELLIS_K8S_BIN"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/tmp" // as hack/k8s-tools.sh does without $HOME
	}
	return filepath.Join(home, ".cache", "trellis", "k8s", Version)
}

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Config is a client configuration for an admin user (group system:masters).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same admin user.
	Kubeconfig string
	// Client is a clientset for Config.
	Client kubernetes.Interface

	etcd, apiserver *process
}

// Start starts etcd and kube-apiserver for t and waits until the API server is ready.
// They are stopped when t ends. It fails t if the binaries are missing or the servers
// do not come up.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := BinDir()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("kubetest: %s not found in %s: run hack/k8s-tools.sh to build it (or set TRELLIS_K8S_BIN)", name, bin)
		}
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		c, err := start(t, bin)
		if err == nil {
			return c
		}
		lastErr = err
		t.Logf("kubetest: attempt %d: %v", attempt, err)
	}
	t.Fatalf("kubetest: starting the API server: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string) (*Cluster, error) {
	dir := t.TempDir()
	p, err := newPKI()
	if err != nil {
		return nil, err
	}
	files, err := p.write(dir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c := &Cluster{}

	clientURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	c.etcd, err = startProcess("etcd", filepath.Join(bin, "etcd"), []string{
		"--name=kubetest",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	}, filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	c.apiserver, err = startProcess("kube-apiserver", filepath.Join(bin, "kube-apiserver"), []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + files.servingCert,
		"--tls-private-key-file=" + files.servingKey,
		"--client-ca-file=" + files.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + files.saPublicKey,
		"--service-account-signing-key-file=" + files.saSigningKey,
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		// Reads go straight to etcd: less memory, and no "storage is (re)initializing"
		// while a new CRD's cache fills (which can stall its deletion).
		"--watch-cache=false",
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--v=1",
	}, filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		c.etcd.stop(5 * time.Second)
		return nil, err
	}
	stop := func() {
		c.apiserver.stop(10 * time.Second)
		c.etcd.stop(10 * time.Second)
	}

	c.Config = &rest.Config{
		Host: "https://127.0.0.1:" + strconv.Itoa(apiPort),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caCert, CertData: p.adminCert, KeyData: p.adminKey,
		},
		QPS: 100, Burst: 200,
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		stop()
		return nil, fmt.Errorf("building a client: %w", err)
	}
	if err := c.waitReady(); err != nil {
		err = fmt.Errorf("%w\nkube-apiserver log:\n%s\netcd log:\n%s", err, c.apiserver.logTail(40), c.etcd.logTail(20))
		stop()
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Config); err != nil {
		stop()
		return nil, err
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log (tail):\n%s", c.apiserver.logTail(30))
		}
		stop()
	})
	return c, nil
}

// waitReady polls /readyz until it answers ok, a server exits or startTimeout passes.
func (c *Cluster) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	rc := c.Client.Discovery().RESTClient()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if err := errors.Join(c.etcd.exitError(), c.apiserver.exitError()); err != nil {
			return err
		}
		body, err := rc.Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for /readyz: %w (last: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	kc.CurrentContext = "kubetest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// CreateNamespace creates a namespace with labels and its "default" ServiceAccount
// (which, without a controller manager, nobody else creates), and fails t on error.
func (c *Cluster) CreateNamespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if _, err := c.Client.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating service account %s/default: %v", name, err)
	}
}

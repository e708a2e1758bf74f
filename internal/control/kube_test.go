package control

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/ca"
	"trellis.dev/trellis/internal/certclient"
	"trellis.dev/trellis/internal/identity"
	"trellis.dev/trellis/internal/kube/casecret"
	"trellis.dev/trellis/internal/kube/install"
	"trellis.dev/trellis/internal/kube/kubetest"
	"trellis.dev/trellis/internal/names"
)

// replica is one control plane replica run by the Kubernetes test.
type replica struct {
	name              string
	xds, mon, webhook string
	stop              context.CancelFunc
	done              chan error
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startReplica runs a control plane in Kubernetes mode against the cluster, with fast
// leader election, until the test ends or stop is called.
func startReplica(ctx context.Context, t *testing.T, cluster *kubetest.Cluster, name string, webhook net.Listener, logOut io.Writer) *replica {
	t.Helper()
	xds, secure, mon := listenLoopback(t), listenLoopback(t), listenLoopback(t)
	r := &replica{name: name, xds: xds.Addr().String(), mon: "http://" + mon.Addr().String(),
		webhook: webhook.Addr().String(), done: make(chan error, 1)}
	cfg := Config{
		DataDir:            filepath.Join(t.TempDir(), name),
		Logger:             slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", name),
		DebounceAfter:      10 * time.Millisecond,
		Warmup:             -1,
		XDSListener:        xds,
		SecureXDSListener:  secure,
		MonitoringListener: mon,
		Kubernetes: &Kubernetes{
			Config:           cluster.Config,
			Namespace:        "trellis-system",
			Identity:         name,
			LeaseDuration:    3 * time.Second,
			RenewDeadline:    2 * time.Second,
			RetryPeriod:      200 * time.Millisecond,
			WebhookListener:  webhook,
			CABundleInterval: 500 * time.Millisecond,
			CASecretInterval: 500 * time.Millisecond,
			Debounce:         20 * time.Millisecond,
		},
	}
	runCtx, stop := context.WithCancel(ctx)
	r.stop = stop
	go func() { r.done <- Run(runCtx, cfg) }()
	t.Cleanup(func() {
		stop()
		if err := <-r.done; err != nil {
			t.Errorf("replica %s: Run: %v", name, err)
		}
		r.done <- nil // for a second waiter
	})
	return r
}

// waitFor polls cond every 50ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leaseHolder(ctx context.Context, c kubernetes.Interface) string {
	lease, err := c.CoordinationV1().Leases("trellis-system").Get(ctx, install.Name, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// TestKubernetes runs two control plane replicas against a real API server and
// checks what Kubernetes mode adds: one leader, one CA Secret shared by both, the
// webhook configurations' caBundle kept current (and the validating webhook served
// with the control plane's own certificate), Services and EndpointSlices served to
// a proxy over ADS, a VirtualService applied through the API changing the routes,
// certificates for service-account tokens (TokenReview), and failover.
func TestKubernetes(t *testing.T) {
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := cluster.Client
	logOut := t.Output()

	// The webhooks call replica a.
	webhookA, webhookB := listenLoopback(t), listenLoopback(t)
	objs, err := install.Objects(install.Config{ControlPlaneURL: "https://" + webhookA.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	installer, err := install.NewClient(cluster.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := installer.Apply(ctx, objs); err != nil {
		t.Fatalf("install: %v", err)
	}
	cluster.CreateNamespace(t, "shop", nil)
	for _, sa := range []string{"reviews", "productpage"} {
		obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: "shop"}}
		if _, err := c.CoreV1().ServiceAccounts("shop").Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	replicas := map[string]*replica{
		"a": startReplica(ctx, t, cluster, "a", webhookA, logOut),
		"b": startReplica(ctx, t, cluster, "b", webhookB, logOut),
	}
	for _, r := range replicas {
		waitFor(t, "replica "+r.name+" /ready", 60*time.Second, func() bool {
			code, _ := get(ctx, t, r.mon+"/ready")
			return code == http.StatusOK
		})
	}

	var leaderName string
	t.Run("one leader, one CA Secret", func(t *testing.T) {
		waitFor(t, "a leader", 10*time.Second, func() bool { leaderName = leaseHolder(ctx, c); return leaderName != "" })
		if replicas[leaderName] == nil {
			t.Fatalf("lease holder %q is not a replica", leaderName)
		}
		secret, err := c.CoreV1().Secrets("trellis-system").Get(ctx, casecret.DefaultName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the CA Secret: %v", err)
		}
		for _, r := range replicas {
			_, roots := get(ctx, t, r.mon+"/ca/roots")
			if roots != string(secret.Data[casecret.BundleKey]) {
				t.Errorf("replica %s trusts a bundle other than the Secret's", r.name)
			}
		}
	})

	t.Run("caBundle kept current", func(t *testing.T) {
		secret, err := c.CoreV1().Secrets("trellis-system").Get(ctx, casecret.DefaultName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bundle := secret.Data[casecret.BundleKey]
		admission := c.AdmissionregistrationV1()
		waitFor(t, "the caBundles", 10*time.Second, func() bool {
			m, err1 := admission.MutatingWebhookConfigurations().Get(ctx, install.InjectorName, metav1.GetOptions{})
			v, err2 := admission.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{})
			return err1 == nil && err2 == nil &&
				bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, bundle) && bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, bundle) &&
				*v.Webhooks[0].FailurePolicy == admissionregistrationv1.Fail
		})
		// Someone resets it: it is put back.
		v, err := admission.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v.Webhooks[0].ClientConfig.CABundle = nil
		if _, err := admission.ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the caBundle to be restored", 10*time.Second, func() bool {
			v, err := admission.ValidatingWebhookConfigurations().Get(ctx, install.ValidatorName, metav1.GetOptions{})
			return err == nil && bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, bundle)
		})
		// The webhook server presents a certificate from the CA for the Service's names.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(bundle)
		conn, err := tls.Dial("tcp", replicas["a"].webhook, &tls.Config{RootCAs: pool, ServerName: "trellis.trellis-system.svc"})
		if err != nil {
			t.Fatalf("TLS to the webhook server as trellis.trellis-system.svc: %v", err)
		}
		conn.Close()
	})

	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	vsGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	virtualService := func(name string, weights ...int64) *unstructured.Unstructured {
		var route []any
		for i, w := range weights {
			host := []string{"reviews", "ratings"}[i]
			route = append(route, map[string]any{"destination": map[string]any{"host": host}, "weight": w})
		}
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": name, "namespace": "shop"},
			"spec":     map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{"route": route}}},
		}}
		return obj
	}

	t.Run("validating webhook over the control plane's TLS", func(t *testing.T) {
		_, err := dyn.Resource(vsGVR).Namespace("shop").Create(ctx, virtualService("too-heavy", 150, 0), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "weight 150 is out of range") {
			t.Fatalf("creating a VirtualService with a weight of 150: %v, want a refusal naming the weight", err)
		}
	})

	// Two services with endpoints: reviews (pods with sidecars) and ratings.
	for _, p := range []struct{ name, app, sa string }{{"reviews-1", "reviews", "reviews"}, {"reviews-2", "reviews", "reviews"}, {"ratings-1", "ratings", "default"}} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "shop", Labels: map[string]string{"app": p.app}},
			Spec: corev1.PodSpec{ServiceAccountName: p.sa,
				InitContainers: []corev1.Container{{Name: "trellis-proxy", Image: "trellis", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
				Containers:     []corev1.Container{{Name: "app", Image: "app"}}},
		}
		if _, err := c.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"reviews", "ratings"} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(8080)}}},
		}
		if _, err := c.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	slice := func(name, service string, pods map[string]string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080))}},
		}
		for _, pod := range slices.Sorted(maps.Keys(pods)) {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{pods[pod]},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: pod}})
		}
		return s
	}
	if _, err := c.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice("reviews-x", "reviews",
		map[string]string{"reviews-1": "10.1.0.1", "reviews-2": "10.1.0.2"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice("ratings-x", "ratings",
		map[string]string{"ratings-1": "10.1.0.9"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A simulated proxy on the replica that does not lead.
	follower := replicas["a"]
	if leaderName == "a" {
		follower = replicas["b"]
	}
	conn, err := grpc.NewClient(follower.xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node, err := bootstrap.Node{ID: "productpage-1.shop", Cluster: "productpage", Metadata: bootstrap.Metadata{
		Workload: "productpage-1", Namespace: "shop", ServiceAccount: "productpage", Outbound: "127.0.0.1:15001", MTLS: true,
	}}.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	proxy := newADSProxy(ctx, t, conn, node)
	reviews := names.OutboundCluster(names.ServiceFQDN("reviews", "shop"), 9080)
	ratings := names.OutboundCluster(names.ServiceFQDN("ratings", "shop"), 9080)

	t.Run("services and endpoints over ADS", func(t *testing.T) {
		waitFor(t, "the endpoints of reviews and ratings", 15*time.Second, func() bool {
			return len(proxy.endpoints(reviews)) == 2 && len(proxy.endpoints(ratings)) == 1
		})
		if diff := cmp.Diff([]string{"10.1.0.1:8080", "10.1.0.2:8080"}, proxy.endpoints(reviews)); diff != "" {
			t.Errorf("reviews endpoints (-want +got):\n%s", diff)
		}
		// The pods run sidecars: mutual TLS toward their service accounts.
		cl := proxy.cluster(reviews)
		if cl.GetTransportSocket() == nil {
			t.Errorf("cluster %s has no TLS transport socket; its endpoints have sidecars", reviews)
		} else if !strings.Contains(cl.GetTransportSocket().String(), "spiffe://cluster.local/ns/shop/sa/reviews") {
			t.Errorf("cluster %s does not expect the identity of shop/reviews: %v", reviews, cl.GetTransportSocket())
		}
	})

	t.Run("VirtualService through the API changes the routes", func(t *testing.T) {
		if _, err := dyn.Resource(vsGVR).Namespace("shop").Create(ctx, virtualService("split", 80, 20), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating a VirtualService: %v", err)
		}
		start := time.Now()
		waitFor(t, "a weighted route to reviews and ratings", 10*time.Second, func() bool {
			rc := proxy.route()
			return rc != nil && strings.Contains(rc.String(), ratings) && strings.Contains(rc.String(), "weighted_clusters")
		})
		t.Logf("routes changed %v after the VirtualService was created", time.Since(start).Round(time.Millisecond))
	})

	t.Run("certificates for service-account tokens", func(t *testing.T) {
		token := func(sa, audience string) string {
			tr, err := c.CoreV1().ServiceAccounts("shop").CreateToken(ctx, sa, &authnv1.TokenRequest{
				Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("TokenRequest for %s: %v", sa, err)
			}
			return tr.Status.Token
		}
		leaderConn, err := grpc.NewClient(replicas[leaderName].xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer leaderConn.Close()
		id := identity.New("shop", "reviews")
		fetch := func(tok string, id identity.ID) (*certclient.Certificate, error) {
			cc, err := certclient.New(certclient.Config{Conn: leaderConn, Identity: id, Token: tok})
			if err != nil {
				t.Fatal(err)
			}
			return cc.Fetch(ctx)
		}
		cert, err := fetch(token("reviews", "trellis-ca"), id)
		if err != nil {
			t.Fatalf("a certificate for shop/reviews with its token: %v", err)
		}
		if cert.Identity != id {
			t.Errorf("identity %s, want %s", cert.Identity, id)
		}
		// Issued by the leader, it verifies against the follower's bundle.
		_, bundle := get(ctx, t, follower.mon+"/ca/roots")
		roots, err := ca.ParseCertificates([]byte(bundle))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
		if _, err := cert.TLS.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("the leader's certificate does not verify against the follower's bundle: %v", err)
		}
		// Another service account's token cannot get reviews' identity.
		if _, err := fetch(token("productpage", "trellis-ca"), id); status.Code(err) != codes.PermissionDenied {
			t.Errorf("productpage's token asking for reviews' identity: %v, want PermissionDenied", err)
		}
		// A token for another audience is refused.
		if _, err := fetch(token("reviews", "https://kubernetes.default.svc"), id); status.Code(err) != codes.Unauthenticated {
			t.Errorf("a token for another audience: %v, want Unauthenticated", err)
		}
		if _, err := fetch("not-a-token", id); status.Code(err) != codes.Unauthenticated {
			t.Errorf("garbage token: %v, want Unauthenticated", err)
		}
	})

	t.Run("failover", func(t *testing.T) {
		old := replicas[leaderName]
		old.stop()
		if err := <-old.done; err != nil {
			t.Errorf("stopping the leader: %v", err)
		}
		old.done <- nil
		start := time.Now()
		waitFor(t, "the follower to lead", 10*time.Second, func() bool { return leaseHolder(ctx, c) == follower.name })
		t.Logf("leadership moved in %v", time.Since(start).Round(time.Millisecond))
		// The proxy on the survivor keeps getting updates.
		s, err := c.DiscoveryV1().EndpointSlices("shop").Get(ctx, "reviews-x", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoints = s.Endpoints[:1]
		if _, err := c.DiscoveryV1().EndpointSlices("shop").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the endpoint removal on the surviving replica's stream", 10*time.Second, func() bool {
			return slices.Equal(proxy.endpoints(reviews), []string{"10.1.0.1:8080"})
		})
		if err := proxy.failed(); err != nil {
			t.Errorf("the proxy's stream ended: %v", err)
		}
	})
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"trellis.dev/trellis/internal/kube/inject"
	"trellis.dev/trellis/internal/kube/kubetest"
)

// The pods' network: a bridge on the host side (kubeNode/24) that every pod's eth0
// is a veth port of. The control plane's xDS (TLS) listens on the bridge address; Services'
// ClusterIPs (the API server's --service-cluster-ip-range) are routed to it from inside
// the pods, where iptables redirects them to the sidecar before they leave. The
// node also serves as the pods' nameserver (clusterDNS).
const (
	kubeNode      = "10.232.0.1"
	kubeXDSPort   = "15910"
	kubeNamespace = "shop"
)

// Helper modes of the test binary for the Kubernetes test (helperMode).
const (
	// kubeEchoEnv: serve HTTP on this address: /ready answers 200; anything else
	// "pod=<POD_NAME> xfcc=<x-forwarded-client-cert>".
	kubeEchoEnv = "TRELLIS_E2E_KUBE_ECHO"
	// kubeGetEnv: GET this URL kubeCountEnv times (default 1) with no proxy, printing
	// one line per answer: "<status> <body>" or "error <err>".
	kubeGetEnv   = "TRELLIS_E2E_KUBE_GET"
	kubeCountEnv = "TRELLIS_E2E_KUBE_COUNT"
)

func kubeHelperMode() (int, bool) {
	if addr := os.Getenv(kubeEchoEnv); addr != "" {
		pod := os.Getenv("POD_NAME")
		err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ready" {
				return
			}
			fmt.Fprintf(w, "pod=%s xfcc=%s", pod, r.Header.Get("X-Forwarded-Client-Cert"))
		}))
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	if url := os.Getenv(kubeGetEnv); url != "" {
		n, _ := strconv.Atoi(os.Getenv(kubeCountEnv))
		// No proxy settings: the call is intercepted, not sent to a proxy.
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		for range max(n, 1) {
			resp, err := c.Get(url)
			if err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("%d %s\n", resp.StatusCode, body)
		}
		return 0, true
	}
	return 0, false
}

// kubeNet is the bridge and the pods' network namespaces.
type kubeNet struct {
	id     int
	bridge string
}

func newKubeNet(t *testing.T) *kubeNet {
	t.Helper()
	needNetNS(t)
	n := &kubeNet{id: os.Getpid() % 100000}
	n.bridge = fmt.Sprintf("trkb%d", n.id)
	mustRun(t, "ip", "link", "add", n.bridge, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", n.bridge).Run() })
	mustRun(t, "ip", "addr", "add", kubeNode+"/24", "dev", n.bridge)
	mustRun(t, "ip", "link", "set", n.bridge, "up")
	return n
}

func mustRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addPod creates the network namespace of pod number i: eth0 on the bridge with
// 10.232.0.<10+i>, the Service range routed to the node, and a resolv.conf (which
// `ip netns exec` bind-mounts on /etc/resolv.conf) naming the node as the
// nameserver, as a kubelet writes the cluster DNS into a pod.
func (n *kubeNet) addPod(t *testing.T, i int, serviceCIDR string) (netns, ip string) {
	t.Helper()
	netns = fmt.Sprintf("trk-%d-%d", n.id, i)
	ip = fmt.Sprintf("10.232.0.%d", 10+i)
	host := fmt.Sprintf("trk%dp%d", n.id, i)
	mustRun(t, "ip", "netns", "add", netns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", netns).Run() })
	conf := filepath.Join("/etc/netns", netns)
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(conf) })
	resolv := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", kubeNode, kubeNamespace)
	if err := os.WriteFile(filepath.Join(conf, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", netns)
	mustRun(t, "ip", "link", "set", host, "master", n.bridge)
	mustRun(t, "ip", "link", "set", host, "up")
	mustRun(t, "ip", "-n", netns, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", netns, "addr", "add", ip+"/24", "dev", "eth0")
	mustRun(t, "ip", "-n", netns, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", netns, "route", "add", serviceCIDR, "via", kubeNode)
	return netns, ip
}

// clusterDNS stands in for the cluster's DNS service on the node's address: it
// answers NXDOMAIN to everything (the mesh's names are the sidecars' to answer) and
// records the names it was asked.
type clusterDNS struct {
	mu    sync.Mutex
	asked map[string]int
}

func startClusterDNS(t *testing.T) *clusterDNS {
	t.Helper()
	d := &clusterDNS{asked: map[string]int{}}
	addr := net.JoinHostPort(kubeNode, "53")
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		d.mu.Lock()
		for _, q := range r.Question {
			d.asked[strings.ToLower(q.Name)]++
		}
		d.mu.Unlock()
		m := new(mdns.Msg)
		m.SetRcode(r, mdns.RcodeNameError)
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return d
}

func (d *clusterDNS) count(name string) (n, total int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.asked {
		total += c
	}
	return d.asked[name], total
}

// kubelet plays the kubelet (and the endpoint controller) for the test's pods: it runs
// what each injected pod spec says inside the pod's network namespace and writes the
// pod's status and its Services' EndpointSlices.
type kubelet struct {
	t       *testing.T
	client  kubernetes.Interface
	dir     string
	self    string // the test binary: the pods' app
	net     *kubeNet
	svcCIDR string
	next    int
	pods    map[string]runningPod // by name
}

type runningPod struct {
	netns, ip string
	pod       *corev1.Pod
}

// run creates the pod through the API (where the webhook injects it) and runs it.
func (k *kubelet) run(ctx context.Context, pod *corev1.Pod) runningPod {
	t := k.t
	t.Helper()
	created, err := k.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	k.next++
	netns, ip := k.net.addPod(t, k.next, k.svcCIDR)
	rp := runningPod{netns: netns, ip: ip, pod: created}
	volumes := k.volumes(ctx, created)

	// Init containers in order; a restartPolicy Always one (the native sidecar) is
	// started and its startup probe awaited before the next.
	for _, c := range created.Spec.InitContainers {
		args, env := k.containerCommand(created, ip, c, volumes)
		uid := ptr.Deref(ptr.Deref(c.SecurityContext, corev1.SecurityContext{}).RunAsUser, 0)
		if ptr.Deref(c.RestartPolicy, "") != corev1.ContainerRestartPolicyAlways {
			cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, args...)...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pod %s: init container %s (%s): %v: %s", pod.Name, c.Name, strings.Join(args, " "), err, out)
			}
			continue
		}
		startIn(t, netns, env, uid == 1337, args...)
		if c.StartupProbe != nil {
			k.probe(ctx, pod.Name, c.Name, "startup", ip, c.StartupProbe)
		}
	}
	for _, c := range created.Spec.Containers {
		args, env := k.containerCommand(created, ip, c, volumes)
		startIn(t, netns, env, false, args...)
	}
	for _, c := range created.Spec.Containers {
		if c.ReadinessProbe != nil {
			k.probe(ctx, pod.Name, c.Name, "readiness", ip, c.ReadinessProbe)
		}
	}

	// Ready: the status a kubelet writes.
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		HostIP: kubeNode, HostIPs: []corev1.HostIP{{IP: kubeNode}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		StartTime: &now,
	}
	for _, ct := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		created.Status.Conditions = append(created.Status.Conditions, corev1.PodCondition{Type: ct, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	updated, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("writing pod %s's status: %v", pod.Name, err)
	}
	rp.pod = updated
	k.pods[pod.Name] = rp
	return rp
}

// volumes makes a host directory per volume of the pod: the projected
// service-account token from the TokenRequest API (bound to the pod, with the
// projection's audience and lifetime), a ConfigMap's keys as files, empty directories
// writable by the containers.
func (k *kubelet) volumes(ctx context.Context, pod *corev1.Pod) map[string]string {
	t := k.t
	t.Helper()
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(k.dir, pod.Name, v.Name)
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil { // the sidecar (uid 1337) writes its emptyDir
			t.Fatal(err)
		}
		out[v.Name] = dir
		if cmv := v.ConfigMap; cmv != nil {
			// The kubelet waits for a ConfigMap volume's ConfigMap to exist.
			eventually(ctx, t, fmt.Sprintf("pod %s: ConfigMap %s of volume %s", pod.Name, cmv.Name, v.Name), func() error {
				cm, err := k.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, cmv.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				for key, value := range cm.Data {
					if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return nil
			})
		}
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			sat := src.ServiceAccountToken
			if sat == nil {
				continue
			}
			tr, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
				Spec: authnv1.TokenRequestSpec{
					Audiences:         []string{sat.Audience},
					ExpirationSeconds: sat.ExpirationSeconds,
					BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("pod %s: TokenRequest for %s: %v", pod.Name, pod.Spec.ServiceAccountName, err)
			}
			if err := os.WriteFile(filepath.Join(dir, sat.Path), []byte(tr.Status.Token), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// containerCommand is what a container runs: its command and args (the trellis image's
// entrypoint is trellis; the app image's is the test binary), with mount paths
// replaced by the volumes' host directories, and its environment with the downward API
// resolved.
func (k *kubelet) containerCommand(pod *corev1.Pod, ip string, c corev1.Container, volumes map[string]string) (args, env []string) {
	t := k.t
	t.Helper()
	entry := k.self
	if c.Image == inject.DefaultImage || strings.HasPrefix(c.Image, "trellis.dev/") {
		entry = trellisBin
	}
	args = append([]string{entry}, c.Command...)
	if len(c.Command) > 0 {
		args = args[1:]
	}
	for _, a := range c.Args {
		for _, m := range c.VolumeMounts {
			a = strings.ReplaceAll(a, m.MountPath, volumes[m.Name])
		}
		args = append(args, a)
	}
	fields := map[string]string{
		"metadata.name": pod.Name, "metadata.namespace": pod.Namespace,
		"spec.serviceAccountName": pod.Spec.ServiceAccountName, "status.podIP": ip,
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			ref := e.ValueFrom.FieldRef
			if ref == nil {
				t.Fatalf("pod %s container %s: env %s: only fieldRef is supported by this kubelet", pod.Name, c.Name, e.Name)
			}
			var ok bool
			if v, ok = fields[ref.FieldPath]; !ok {
				t.Fatalf("pod %s container %s: env %s: field %s not supported by this kubelet", pod.Name, c.Name, e.Name, ref.FieldPath)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return args, env
}

// probe runs an HTTP probe from the node, as the kubelet does, until it succeeds.
func (k *kubelet) probe(ctx context.Context, pod, container, kind, ip string, p *corev1.Probe) {
	t := k.t
	t.Helper()
	get := p.HTTPGet
	if get == nil {
		t.Fatalf("pod %s container %s: %s probe is not httpGet", pod, container, kind)
	}
	url := fmt.Sprintf("http://%s%s", net.JoinHostPort(ip, get.Port.String()), get.Path)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	eventually(ctx, t, fmt.Sprintf("pod %s container %s: %s probe %s", pod, container, kind, url), func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// writeEndpointSlice writes the Service's EndpointSlice, as the endpoint controller
// does: one endpoint per ready pod it selects, each Service port with its target port.
func (k *kubelet) writeEndpointSlice(ctx context.Context, svc *corev1.Service) {
	t := k.t
	t.Helper()
	pods, err := k.client.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name + "-e2e", Namespace: svc.Namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, sp := range svc.Spec.Ports {
		slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: ptr.To(sp.Name), Port: ptr.To(sp.TargetPort.IntVal), Protocol: ptr.To(corev1.ProtocolTCP)})
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" {
			continue
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		})
	}
	if _, err := k.client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating EndpointSlice %s: %v", slice.Name, err)
	}
}

// applyYAML creates one custom resource through the API.
func applyYAML(ctx context.Context, t *testing.T, dyn dynamic.Interface, resource string, doc string) {
	t.Helper()
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatal(err)
	}
	gv, err := schema.ParseGroupVersion(obj.GetAPIVersion())
	if err != nil {
		t.Fatal(err)
	}
	gvr := gv.WithResource(resource)
	if _, err := dyn.Resource(gvr).Namespace(obj.GetNamespace()).Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// echoPod is a pod of the echo app, version v.
func echoPod(name, version string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeNamespace, Labels: map[string]string{"app": "echo", "version": version}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "echo",
			Containers: []corev1.Container{{
				Name: "app", Image: "example.com/echo:1",
				Env: []corev1.EnvVar{
					{Name: kubeEchoEnv, Value: "0.0.0.0:8080"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/ready", Port: intstr.FromString("http")}}},
			}},
		},
	}
}

// TestKubernetesPods installs Trellis into a real API server with its control plane
// outside the cluster, creates pods in a labelled namespace (injected by the webhook)
// and runs them in network namespaces as a kubelet would. A client pod calls a Service
// by its ClusterIP and by its names with no proxy settings: the call is intercepted,
// balanced across two server pods, mutually authenticated (the server app sees the
// client's SPIFFE identity in XFCC, and its port refuses plaintext under STRICT), and a
// VirtualService applied through the API moves all traffic to one pod within seconds.
// The servers' readiness probes, rewritten by the injector, pass under STRICT. Workload
// selectors match pods by their labels: an AuthorizationPolicy selecting version v2
// denies a path on that pod, and a route with sourceLabels matches the client pod,
// which no Service selects (its sidecar has its labels from the injector alone).
func TestKubernetesPods(t *testing.T) {
	n := newKubeNet(t)
	dns := startClusterDNS(t)
	cluster := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := cluster.Client
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "trellis-kube-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The control plane, outside the cluster; the webhooks point at it.
	webhook, monitoring := freeAddr(t), freeAddr(t)
	// The sidecars connect over TLS to the node's address, which the control plane's
	// certificate names, and verify it with the trust bundle ConfigMap the leader keeps
	// in the namespace.
	xds := net.JoinHostPort(kubeNode, kubeXDSPort)
	cp := startTrellis(t, "", "control", "--kubeconfig", cluster.Kubeconfig, "--namespace", "trellis-system",
		"--xds-addr", "127.0.0.1:0", "--secure-xds-addr", xds, "--serving-name", kubeNode, "--webhook-addr", webhook,
		"--monitoring-addr", monitoring, "--dashboard-addr", "", "--data-dir", filepath.Join(dir, "control"),
		"--proxy-xds-address", xds, "--proxy-image", "trellis.dev/trellis:e2e")
	install := exec.CommandContext(ctx, trellisBin, "install", "--kubeconfig", cluster.Kubeconfig, "--control-plane-url", "https://"+webhook)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("trellis install: %v: %s", err, out)
	}
	eventually(ctx, t, "the control plane ready and the injector's caBundle set", func() error {
		select {
		case <-cp.exited:
			t.Fatalf("trellis control exited: %v", cp.err)
		default:
		}
		resp, err := http.Get("http://" + monitoring + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/ready: %d", resp.StatusCode)
		}
		mwc, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "trellis-sidecar-injector", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, w := range mwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return fmt.Errorf("webhook %s has no caBundle yet", w.Name)
			}
		}
		return nil
	})

	cluster.CreateNamespace(t, kubeNamespace, map[string]string{"trellis-injection": "enabled"})
	for _, sa := range []string{"echo", "client"} {
		if _, err := client.CoreV1().ServiceAccounts(kubeNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: kubeNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	applyYAML(ctx, t, dyn, "peerauthentications", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
`)
	applyYAML(ctx, t, dyn, "destinationrules", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: shop}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`)
	svc, err := client.CoreV1().Services(kubeNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: kubeNamespace},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "echo"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := svc.Spec.ClusterIP
	t.Logf("Service echo: ClusterIP %s (from the API server's range %s)", clusterIP, kubetest.ServiceCIDR)

	k := &kubelet{t: t, client: client, dir: dir, self: self, net: n, svcCIDR: kubetest.ServiceCIDR, pods: map[string]runningPod{}}
	echoA := k.run(ctx, echoPod("echo-a", "v1"))
	k.run(ctx, echoPod("echo-b", "v2"))
	clientPod := k.run(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: kubeNamespace, Labels: map[string]string{"app": "client"}},
		Spec: corev1.PodSpec{ServiceAccountName: "client", Containers: []corev1.Container{{
			Name: "app", Image: "example.com/client:1", Env: []corev1.EnvVar{{Name: kubeEchoEnv, Value: "0.0.0.0:8080"}},
		}}},
	})
	k.writeEndpointSlice(ctx, svc)

	// The webhook injected the pods: the init step, the native sidecar, the rewritten
	// readiness probe (which the kubelet above passed, under STRICT).
	for _, rp := range []runningPod{echoA, clientPod} {
		ic := rp.pod.Spec.InitContainers
		if len(ic) < 2 || ic[0].Name != inject.InitName || ic[1].Name != inject.ProxyName || ptr.Deref(ic[1].RestartPolicy, "") != corev1.ContainerRestartPolicyAlways {
			t.Fatalf("pod %s was not injected: init containers %v", rp.pod.Name, ic)
		}
	}
	if args := strings.Join(echoA.pod.Spec.InitContainers[1].Args, " "); !strings.Contains(args, "--xds-ca-file="+inject.CADir+"/"+inject.RootCertKey) {
		t.Errorf("the sidecar does not verify the control plane with the trust bundle ConfigMap: %s", args)
	}
	if p := echoA.pod.Spec.Containers[0].ReadinessProbe.HTTPGet; p.Port.IntValue() != inject.HealthPort || p.Path != "/app-health/app/readyz" {
		t.Errorf("echo-a's readiness probe was not rewritten: %+v", p)
	}

	// get runs n GETs from the client pod, as its app would, and counts the answers by
	// the pod that served them.
	get := func(url string, n int) (map[string]int, string, error) {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", clientPod.netns, self)
		cmd.Env = append(os.Environ(), kubeGetEnv+"="+url, kubeCountEnv+"="+strconv.Itoa(n), "GODEBUG=netdns=go")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, "", fmt.Errorf("GET %s: %v: %s", url, err, out)
		}
		counts, xfcc := map[string]int{}, ""
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasPrefix(line, "200 pod=") {
				return nil, "", fmt.Errorf("GET %s: %q", url, line)
			}
			pod, rest, _ := strings.Cut(strings.TrimPrefix(line, "200 pod="), " xfcc=")
			counts[pod]++
			xfcc = rest
		}
		return counts, xfcc, nil
	}

	const calls = 40
	wantID := "URI=spiffe://cluster.local/ns/shop/sa/client"
	for _, url := range []string{
		"http://" + clusterIP + "/",
		"http://echo/",
		"http://echo.shop/",
		"http://echo.shop.svc.cluster.local/",
	} {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"), func(t *testing.T) {
			var counts map[string]int
			var xfcc string
			eventually(ctx, t, "answers from both echo pods to "+url, func() error {
				var err error
				if counts, xfcc, err = get(url, calls); err != nil {
					return err
				}
				if counts["echo-a"] == 0 || counts["echo-b"] == 0 {
					return fmt.Errorf("answers by pod: %v", counts)
				}
				return nil
			})
			t.Logf("%s: %d calls answered by pod: %v", url, calls, counts)
			if !strings.Contains(xfcc, wantID) {
				t.Errorf("the server saw x-forwarded-client-cert %q, want the client's identity %s", xfcc, wantID)
			}
		})
	}

	// The sidecar answered the mesh's names itself and forwarded the rest (the search
	// list's other candidates) to the cluster DNS.
	if n, total := dns.count("echo.shop.svc.cluster.local."); n != 0 || total == 0 {
		t.Errorf("the cluster DNS was asked %d times for echo.shop.svc.cluster.local and %d times in all; want 0, and some forwarded queries", n, total)
	}

	// STRICT: the server pods' port takes mutual TLS only; a plaintext call from the
	// node to the pod IP, which the pod's iptables sends to its sidecar, is refused.
	plain := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}
	if resp, err := plain.Get("http://" + net.JoinHostPort(echoA.ip, "8080") + "/"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Errorf("a plaintext call to echo-a's port under STRICT was answered: %d %s", resp.StatusCode, body)
	}

	// A VirtualService through the API: everything to v2 (echo-b).
	start := time.Now()
	applyYAML(ctx, t, dyn, "virtualservices", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: shop}
spec:
  hosts: [echo]
  http:
  - route:
    - {destination: {host: echo, subset: v2}, weight: 100}
`)
	var moved time.Duration
	eventually(ctx, t, "every call answered by echo-b after the VirtualService", func() error {
		counts, _, err := get("http://echo/", 20)
		if err != nil {
			return err
		}
		if counts["echo-b"] != 20 {
			return fmt.Errorf("answers by pod: %v", counts)
		}
		moved = time.Since(start)
		return nil
	})
	t.Logf("VirtualService applied through the API: all calls to echo-b %s after the create", moved.Round(time.Millisecond))
	counts, _, err := get("http://"+clusterIP+"/", calls)
	if err != nil || counts["echo-b"] != calls {
		t.Errorf("by ClusterIP after the VirtualService: %v, %v; want all %d from echo-b", counts, err, calls)
	}

	// A policy that selects pods by label: the injector gives each sidecar its pod's
	// labels (TRELLIS_LABELS), which it announces, so the policy reaches echo-b's
	// sidecar (version v2, where every call now goes).
	applyYAML(ctx, t, dyn, "authorizationpolicies", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v2-private, namespace: shop}
spec:
  selector: {matchLabels: {version: v2}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/private"]}}]}]
`)
	eventually(ctx, t, "/private denied by a policy selecting version v2", func() error {
		if _, _, err := get("http://echo/private", 1); err == nil || !strings.Contains(err.Error(), `"403`) {
			return fmt.Errorf("GET http://echo/private: %v; want 403", err)
		}
		return nil
	})
	if counts, _, err := get("http://echo/", 5); err != nil || counts["echo-b"] != 5 {
		t.Errorf("other paths after the DENY policy: %v, %v; want 5 answers from echo-b", counts, err)
	}

	// A route that matches the calling pod's labels (sourceLabels): the client pod is
	// no Service's endpoint, so its sidecar knows its labels only from the injector.
	vs := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	if err := dyn.Resource(vs).Namespace(kubeNamespace).Delete(ctx, "echo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	applyYAML(ctx, t, dyn, "virtualservices", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-by-source, namespace: shop}
spec:
  hosts: [echo]
  http:
  - match: [{sourceLabels: {app: client}}]
    route:
    - {destination: {host: echo, subset: v1}}
  - route:
    - {destination: {host: echo, subset: v2}}
`)
	eventually(ctx, t, "every call from the client pod answered by echo-a (sourceLabels app=client)", func() error {
		counts, _, err := get("http://echo/", 20)
		if err != nil {
			return err
		}
		if counts["echo-a"] != 20 {
			return fmt.Errorf("answers by pod: %v", counts)
		}
		return nil
	})
}

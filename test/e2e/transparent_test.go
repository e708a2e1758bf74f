package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the app and the client inside the network namespaces
// (helperMode, called by TestMain).
const (
	echoEnv = "TRELLIS_E2E_ECHO" // serve HTTP on this address: "echo <Host>"
	getEnv  = "TRELLIS_E2E_GET"  // GET this URL, print status and body
)

func helperMode() (int, bool) {
	if code, ok := kubeHelperMode(); ok {
		return code, true
	}
	if addr := os.Getenv(echoEnv); addr != "" {
		err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "echo %s", r.Host)
		}))
		fmt.Fprintln(os.Stderr, err)
		return 1, true
	}
	if url := os.Getenv(getEnv); url != "" {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err != nil {
			fmt.Println(err)
			return 1, true
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s", resp.StatusCode, body)
		return 0, true
	}
	return 0, false
}

// transparentNet is two pods played by network namespaces, client and server, joined
// by a veth pair (10.231.0.1/30, 10.231.0.2/30), each also joined to the host by a
// veth pair (10.231.1.0/30, 10.231.2.0/30) so that its sidecar reaches the control
// plane at 10.231.1.1. Every address is on these interfaces: no traffic leaves them.
type transparentNet struct{ client, server string }

const (
	tpControl   = "10.231.1.1"
	tpServerIP  = "10.231.0.2"
	tpServiceIP = "10.96.0.10" // the Service's ClusterIP: routed to the server, never answered
)

func newTransparentNet(t *testing.T) transparentNet {
	t.Helper()
	needNetNS(t)
	id := os.Getpid() % 100000
	n := transparentNet{client: fmt.Sprintf("trtp-c-%d", id), server: fmt.Sprintf("trtp-s-%d", id)}
	hc, hs := fmt.Sprintf("trtpc%d", id), fmt.Sprintf("trtps%d", id)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{n.client, n.server} {
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	// Deleting a namespace deletes the veth pairs with an end in it.
	run("ip", "link", "add", hc, "type", "veth", "peer", "name", "eth1", "netns", n.client)
	run("ip", "link", "add", hs, "type", "veth", "peer", "name", "eth1", "netns", n.server)
	run("ip", "-n", n.client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n.server)
	run("ip", "addr", "add", tpControl+"/30", "dev", hc)
	run("ip", "link", "set", hc, "up")
	run("ip", "addr", "add", "10.231.2.1/30", "dev", hs)
	run("ip", "link", "set", hs, "up")
	for ns, addrs := range map[string][2]string{n.client: {"10.231.1.2/30", "10.231.0.1/30"}, n.server: {"10.231.2.2/30", tpServerIP + "/30"}} {
		run("ip", "-n", ns, "addr", "add", addrs[0], "dev", "eth1")
		run("ip", "-n", ns, "addr", "add", addrs[1], "dev", "eth0")
		run("ip", "-n", ns, "link", "set", "eth1", "up")
		run("ip", "-n", ns, "link", "set", "eth0", "up")
	}
	run("ip", "-n", n.server, "route", "add", tpControl+"/32", "via", "10.231.2.1")
	run("ip", "-n", n.client, "route", "add", tpServiceIP+"/32", "via", tpServerIP)
	for _, ns := range []string{n.client, n.server} {
		run("ip", "netns", "exec", ns, trellisBin, "iptables")
	}
	return n
}

// needNetNS skips t unless it runs as root with the tools to make network namespaces,
// iptables rules and processes of the proxy's UID.
func needNetNS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs and iptables rules, and runs the sidecars as uid 1337")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (hack/test-deps.sh installs it)", tool)
		}
	}
}

// startIn runs a command in network namespace ns (as uid 1337 when proxy is set) until
// the test ends; at the end it logs its output if the test failed.
func startIn(t *testing.T, ns string, env []string, asProxy bool, args ...string) {
	t.Helper()
	argv := []string{"netns", "exec", ns}
	if asProxy {
		argv = append(argv, "setpriv", "--reuid=1337", "--regid=1337", "--clear-groups")
	}
	cmd := exec.Command("ip", append(argv, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", args, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("%s in %s:\n%s", strings.Join(args, " "), ns, tail(out.String(), 60))
		}
	})
}

// TestTransparentProxying: a client pod calls a Service by its ClusterIP with no
// proxy settings; `trellis iptables` sends the call to its sidecar, which routes it by
// the original destination to the server pod, whose sidecar takes it (redirected too)
// and hands it to the app. A destination that is no Service passes through both.
func TestTransparentProxying(t *testing.T) {
	n := newTransparentNet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "trellis-transparent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the sidecars (uid 1337) read their bootstraps
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	svc := write("svc.yaml", `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: `+tpServiceIP+`
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: 8080}]
`)
	xds := tpControl + ":15910"
	clientBoot := write("client.json", `{"node": {"id": "client.default", "cluster": "client", "metadata":
  {"workload": "client", "namespace": "default", "labels": {"app": "client"}, "mode": "transparent"}},
 "xds": "`+xds+`", "admin": "127.0.0.1:15000"}`)
	serverBoot := write("server.json", `{"node": {"id": "echo.default", "cluster": "echo", "metadata":
  {"workload": "echo", "namespace": "default", "labels": {"app": "echo"}, "mode": "transparent",
   "ports": [{"name": "http", "port": 8080, "protocol": "HTTP", "target": "127.0.0.1:8080", "inbound": "`+tpServerIP+`:8080"}]}},
 "xds": "`+xds+`", "admin": "127.0.0.1:15000"}`)

	// The sidecars here have no join token (no mutual TLS): they cannot authenticate
	// their xDS streams, which the control plane then has to allow.
	startTrellis(t, "", "control", "-f", svc, "--xds-addr", xds, "--secure-xds-addr", tpControl+":15911",
		"--monitoring-addr", "127.0.0.1:0", "--dashboard-addr", "", "--data-dir", filepath.Join(dir, "data"),
		"--xds-allow-unauthenticated")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, n.server, []string{echoEnv + "=127.0.0.1:8080"}, false, self)
	startIn(t, n.server, []string{echoEnv + "=" + tpServerIP + ":9999"}, false, self) // no Service: passed through
	startIn(t, n.server, nil, true, trellisBin, "proxy", "--bootstrap", serverBoot)
	startIn(t, n.client, nil, true, trellisBin, "proxy", "--bootstrap", clientBoot)

	get := func(url string) (string, error) {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.client, self)
		cmd.Env = append(os.Environ(), getEnv+"="+url)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("GET %s: %v: %s", url, err, out)
		}
		return string(out), nil
	}
	stats := func(ns string) string {
		out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "curl", "-s", "http://127.0.0.1:15000/stats").Output()
		return string(out)
	}
	tests := []struct {
		name, url, want string
		client, server  string // a stat line each sidecar must show
	}{
		{name: "service by its cluster IP", url: "http://" + tpServiceIP + ":8080/",
			want:   "200 echo " + tpServiceIP + ":8080",
			client: "listener." + tpServiceIP + "_8080.rq_2xx", server: "listener.inbound|8080.rq_2xx"},
		{name: "no service: passed through", url: "http://" + tpServerIP + ":9999/",
			want:   "200 echo " + tpServerIP + ":9999",
			client: "cluster.PassthroughCluster.tcp_connections_total", server: "cluster.PassthroughCluster.tcp_connections_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(ctx, t, tt.name, func() error {
				got, err := get(tt.url)
				if err != nil {
					return err
				}
				if got != tt.want {
					return fmt.Errorf("got %q, want %q", got, tt.want)
				}
				return nil
			})
			for ns, stat := range map[string]string{n.client: tt.client, n.server: tt.server} {
				if s := stats(ns); !strings.Contains(s, stat+" ") || strings.Contains(s, stat+" 0\n") {
					t.Errorf("sidecar in %s: no %s in its stats:\n%s", ns, stat, s)
				}
			}
		})
	}
}

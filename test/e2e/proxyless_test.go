package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

// Proxyless gRPC (issue 11, docs/proxyless.md): grpc-go's own xDS client and server
// (google.golang.org/grpc/xds), bootstrapped by `trellis bootstrap grpc`, against
// the control plane of `trellis up`, in a mesh where mutual TLS is STRICT.
//   - greeter v1 and v2 are proxyless servers; a VirtualService sends x-canary: yes
//     to v2 and splits the rest 80/20; an AuthorizationPolicy denies UnaryCall.
//   - pinger is fortio behind a sidecar (gRPC health on 8079).
//   - grpc-client is a proxyless client; "client" the sidecar-backed client of
//     startMesh.
//
// Every call crosses mutual TLS, and the test fails if grpc-go NACKed anything.
func TestProxylessGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := startMesh(ctx, t, strictMesh+`---
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 9090, appProtocol: grpc}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: greeter
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter}
spec:
  hosts: [greeter]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: greeter, subset: v2}}]
    retries: {attempts: 2, retryOn: unavailable}
    timeout: 5s
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}}
    route: [{destination: {host: greeter, subset: v1}}]
  - route:
    - {destination: {host: greeter, subset: v1}, weight: 80}
    - {destination: {host: greeter, subset: v2}, weight: 20}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: greeter-deny-unary}
spec:
  selector: {matchLabels: {app: greeter}}
  action: DENY
  rules: [{to: [{operation: {paths: [/grpc.testing.TestService/UnaryCall]}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 9090, appProtocol: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter-v2}
spec:
  selector: {app: greeter, version: v2}
  ports: [{name: grpc, port: 9090, appProtocol: grpc}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: hello}
spec:
  parentRefs: [{group: "", kind: Service, name: hello, port: 9090}]
  rules:
  - matches: [{method: {service: grpc.testing.TestService, method: EmptyCall}, headers: [{name: x-gamma, value: "yes"}]}]
    backendRefs: [{name: greeter-v2, port: 9090}]
---
apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: pinger, labels: {app: pinger}}
spec:
  service: pinger
  serviceAccount: pinger
  ports: [{name: grpc, port: 8079, protocol: GRPC}]
  command: `+fortioServer("", "$(PORT)", "")+"\n")
	px := &proxylessRun{t: t, dir: t.TempDir(), state: m.up.statePath}
	for _, v := range []string{"v1", "v2"} {
		px.server(ctx, "greeter-"+v, v, "--service", "greeter", "--service-account", "greeter",
			"--labels", "app=greeter,version="+v, "--cert-renew-every", "1s")
	}
	clientBootstrap := px.bootstrap(ctx, "grpc-client", "--service-account", "grpc-client", "--cert-renew-every", "1s")
	const greeter = "xds:///greeter.default.svc.cluster.local:9090"
	greeterID := "spiffe://cluster.local/ns/default/sa/greeter"

	t.Run("header routes to its subset", func(t *testing.T) {
		tl := px.client(ctx, clientBootstrap, greeter, "empty", 20, "x-canary=yes")
		t.Logf("x-canary: yes: %+v", tl)
		if tl.Codes["OK"] != 20 || tl.Versions["v2"] != 20 {
			t.Errorf("want 20 OK answers from v2, got %+v", tl)
		}
		if tl.Peers[greeterID] != 20 {
			t.Errorf("want every answer over mTLS from %s, got peers %v", greeterID, tl.Peers)
		}
	})
	t.Run("weighted split lands near its weights", func(t *testing.T) {
		const n = 300
		tl := px.client(ctx, clientBootstrap, "xds:///greeter:9090", "empty", n, "")
		v1 := float64(tl.Versions["v1"]) / n
		t.Logf("80/20 split over %d calls: v1 %.1f%%, v2 %.1f%% (%+v)", n, 100*v1, 100*float64(tl.Versions["v2"])/n, tl)
		if tl.Codes["OK"] != n {
			t.Errorf("want %d OK, got codes %v", n, tl.Codes)
		}
		if v1 < 0.72 || v1 > 0.88 {
			t.Errorf("v1 got %.1f%% of calls, want 80%% ± 8", 100*v1)
		}
	})
	t.Run("GRPCRoute method and header match", func(t *testing.T) {
		tl := px.client(ctx, clientBootstrap, "xds:///hello:9090", "empty", 20, "x-gamma=yes")
		t.Logf("hello EmptyCall with x-gamma: yes: %+v", tl)
		if tl.Codes["OK"] != 20 || tl.Versions["v2"] != 20 {
			t.Errorf("want 20 OK answers from v2 (greeter-v2), got %+v", tl)
		}
	})
	t.Run("fault injection aborts", func(t *testing.T) {
		tl := px.clientWarmPlain(ctx, clientBootstrap, greeter, "empty", 10, "x-fault=abort")
		t.Logf("x-fault: abort: %+v", tl)
		if tl.Codes["ResourceExhausted"] != 10 {
			t.Errorf("want 10 ResourceExhausted (the injected abort), got codes %v", tl.Codes)
		}
	})
	t.Run("authorization policy denies a method on a proxyless server", func(t *testing.T) {
		tl := px.client(ctx, clientBootstrap, greeter, "unary", 10, "")
		t.Logf("UnaryCall: %+v", tl)
		if tl.Codes["PermissionDenied"] != 10 {
			t.Errorf("want 10 PermissionDenied, got codes %v", tl.Codes)
		}
	})
	t.Run("proxyless client to sidecar-backed service over mTLS", func(t *testing.T) {
		tl := px.client(ctx, clientBootstrap, "xds:///pinger:8079", "health", 10, "")
		t.Logf("pinger health: %+v", tl)
		if want := "spiffe://cluster.local/ns/default/sa/pinger"; tl.Codes["OK"] != 10 || tl.Peers[want] != 10 {
			t.Errorf("want 10 OK answers over mTLS from %s, got %+v", want, tl)
		}
	})
	t.Run("sidecar-backed client to proxyless server over mTLS", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///"+m.outbound,
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("greeter:9090"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "yes")
		var md metadata.MD
		deadline := time.Now().Add(20 * time.Second)
		for {
			callCtx, cancel := context.WithTimeout(canary, 3*time.Second)
			_, err = testgrpc.NewTestServiceClient(conn).EmptyCall(callCtx, &testgrpc.Empty{}, grpc.Header(&md))
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("EmptyCall through the client's sidecar: %v", err)
		}
		t.Logf("answer headers: version %v, peer %v", md.Get("x-version"), md.Get("x-peer"))
		if want := "spiffe://cluster.local/ns/default/sa/default"; strings.Join(md.Get("x-peer"), ",") != want {
			t.Errorf("the proxyless server saw peer %v, want %s (the client sidecar over mTLS)", md.Get("x-peer"), want)
		}
		if got := md.Get("x-version"); len(got) != 1 || got[0] != "v2" {
			t.Errorf("x-canary: yes answered by %v, want v2", got)
		}
	})
	t.Run("running servers pick up renewed certificates", func(t *testing.T) {
		// The agents renew every second and grpc-go re-reads the files every second:
		// a server that keeps running presents a new certificate, and calls go on.
		before := px.client(ctx, clientBootstrap, greeter, "empty", 1, "x-canary=yes")
		deadline := time.Now().Add(15 * time.Second)
		for {
			after := px.client(ctx, clientBootstrap, greeter, "empty", 1, "x-canary=yes")
			if after.Codes["OK"] != 1 || after.Peers[greeterID] != 1 {
				t.Fatalf("want an OK answer over mTLS from %s, got %+v", greeterID, after)
			}
			if !maps.Equal(before.Serials, after.Serials) {
				t.Logf("v2 presented %v, then %v", before.Serials, after.Serials)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("v2 still presents the certificate %v after 15s (renewed every 1s)", before.Serials)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if log := m.up.stderr.String(); strings.Contains(log, "(NACK)") {
		t.Errorf("the control plane logged a NACK:\n%s", log)
	}
	nacks := controlCounters(ctx, t, m.up.statePath, "trellis_xds_nacks_total")
	t.Logf("NACKs counted by the control plane: %v", nacks)
	for typ, n := range nacks {
		if n != "0" {
			t.Errorf("grpc-go NACKed %v %s resources; control plane log:\n%s", n, typ, m.up.stderr.String())
		}
	}
	// xDS authentication is on (the default): the proxyless applications' streams
	// were authenticated by their workload certificates, none refused.
	refused := controlCounters(ctx, t, m.up.statePath, "trellis_xds_refused_streams_total")
	t.Logf("xDS streams refused by the control plane: %v", refused)
	if len(refused) == 0 {
		t.Error("the control plane does not count refused xDS streams: is xDS authentication off?")
	}
	for reason, n := range refused {
		if n != "0" {
			t.Errorf("%s xDS streams refused (%s); control plane log:\n%s", n, reason, m.up.stderr.String())
		}
	}
	data, err := os.ReadFile(clientBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	var boot struct {
		XDSServers []struct {
			ChannelCreds []struct {
				Type   string
				Config map[string]string
			} `json:"channel_creds"`
		} `json:"xds_servers"`
	}
	if err := json.Unmarshal(data, &boot); err != nil || len(boot.XDSServers) != 1 || len(boot.XDSServers[0].ChannelCreds) != 1 ||
		boot.XDSServers[0].ChannelCreds[0].Type != "tls" || boot.XDSServers[0].ChannelCreds[0].Config["certificate_file"] == "" {
		t.Errorf("grpc-client's bootstrap does not authenticate to the xDS server with its certificate (%v):\n%s", err, data)
	}
}

// proxylessRun starts proxyless apps of a test's mesh: `trellis bootstrap grpc
// --agent` for each, then the app (this test binary in a grpcAppMode).
type proxylessRun struct {
	t     *testing.T
	dir   string
	state string
}

// bootstrap runs `trellis bootstrap grpc --agent` for a workload and returns the
// bootstrap file once written (after the first certificate).
func (px *proxylessRun) bootstrap(ctx context.Context, workload string, flags ...string) string {
	t := px.t
	t.Helper()
	out := filepath.Join(px.dir, workload+".json")
	args := append([]string{"bootstrap", "grpc", "--workload", workload, "--state", px.state, "--out", out,
		"--agent", "--cert-refresh", "1s"}, flags...)
	px.start(trellisBin, args, nil)
	for {
		if _, err := os.Stat(out); err == nil {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no bootstrap file: %v", workload, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// server starts a proxyless server of version v and waits until it serves with
// the control plane's listener.
func (px *proxylessRun) server(ctx context.Context, workload, version string, flags ...string) {
	t := px.t
	t.Helper()
	listen := freeAddr(t)
	_, port, _ := strings.Cut(listen, ":")
	b := px.bootstrap(ctx, workload, append(flags, "--port", "grpc:9090:"+port)...)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stdout := px.start(self, nil, []string{grpcAppEnv + "=server", grpcListenEnv + "=" + listen,
		grpcVersionEnv + "=" + version, "GRPC_XDS_BOOTSTRAP=" + b})
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "SERVING") && !strings.Contains(sc.Text(), "NOT_SERVING") {
				serving <- sc.Text()
				io.Copy(io.Discard, stdout)
				return
			}
			t.Logf("%s: %s", workload, sc.Text())
		}
	}()
	select {
	case <-serving:
	case <-ctx.Done():
		t.Fatalf("%s never served with the control plane's listener", workload)
	}
}

// client runs a proxyless client and returns its tally.
func (px *proxylessRun) client(ctx context.Context, bootstrapFile, target, method string, calls int, header string) grpcTally {
	px.t.Helper()
	return px.runClient(ctx, bootstrapFile, target, method, calls, header, "")
}

// clientWarmPlain is client, warming up without the header.
func (px *proxylessRun) clientWarmPlain(ctx context.Context, bootstrapFile, target, method string, calls int, header string) grpcTally {
	px.t.Helper()
	return px.runClient(ctx, bootstrapFile, target, method, calls, header, "1")
}

func (px *proxylessRun) runClient(ctx context.Context, bootstrapFile, target, method string, calls int, header, warmPlain string) grpcTally {
	t := px.t
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), grpcAppEnv+"=client", grpcTargetEnv+"="+target, grpcMethodEnv+"="+method,
		grpcCallsEnv+"="+fmt.Sprint(calls), grpcHeaderEnv+"="+header, grpcWarmPlainEnv+"="+warmPlain,
		"GRPC_XDS_BOOTSTRAP="+bootstrapFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("proxyless client %s %s: %v\n%s", target, method, err, stderr.String())
	}
	var tl grpcTally
	if err := json.Unmarshal(out, &tl); err != nil {
		t.Fatalf("proxyless client output %q: %v", out, err)
	}
	return tl
}

// start starts a process that the test's cleanup kills; it returns its stdout.
func (px *proxylessRun) start(bin string, args, env []string) io.Reader {
	t := px.t
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %v: %v", bin, args, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s %s stderr:\n%s", filepath.Base(bin), strings.Join(args, " "), stderr.String())
		}
	})
	return stdout
}

// controlCounters reads the counter metric by labels from the control plane of the
// mesh whose state file is statePath.
func controlCounters(ctx context.Context, t *testing.T, statePath, metric string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(statePath)
	var raw struct {
		ControlPlane struct{ Monitoring string } `json:"controlPlane"`
	}
	if err != nil || json.Unmarshal(data, &raw) != nil || raw.ControlPlane.Monitoring == "" {
		t.Fatalf("reading the monitoring address from %s: %v", statePath, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+raw.ControlPlane.Monitoring+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, metric+"{"); ok {
			labels, value, _ := strings.Cut(rest, "} ")
			out[labels] = value
		}
	}
	return out
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"trellis.dev/trellis/bench/internal/child"
)

// path is one way from fortio load to the echo server.
type path interface {
	// targets returns where each workload's load goes on this path.
	target(workload string) target
	// procs are the processes whose CPU and memory the report shows for this path:
	// the proxies, not the load generator or the echo server.
	procs() []measured
	// stop ends what the path started.
	stop()
}

// settler is a path whose proxies change after start-up in a way the runs must not
// see: settle waits until they have (the Trellis sidecars give back their start-up
// pages a few seconds after they are ready).
type settler interface {
	settle(ctx context.Context) error
}

var _ settler = (*trellisPath)(nil)

// measured is one process of a path.
type measured struct {
	name string // "haproxy", "client sidecar", "server sidecar"
	pid  int
}

// directPath sends load straight to the echo server.
type directPath struct{ echo *echoServer }

func (p directPath) target(workload string) target {
	switch workload {
	case WorkloadGRPC:
		return target{dest: p.echo.grpc}
	case WorkloadTCP:
		return target{dest: "tcp://" + p.echo.tcp}
	default:
		return target{dest: "http://" + p.echo.http + "/echo"}
	}
}
func (directPath) procs() []measured { return nil }
func (directPath) stop()             {}

// haproxyPath is one HAProxy hop: an HTTP/1.1 frontend (keep-alive, server
// connections reused), an h2c frontend for gRPC and a TCP frontend.
type haproxyPath struct {
	*child.Child
	http, grpc, tcp string
}

// haproxyConfig is HAProxy's configuration: the defaults of Debian's package, minus
// logging, plus connection reuse towards the server.
const haproxyConfig = `global
    maxconn 4096

defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend http
    mode http
    bind %[1]s
    default_backend http

backend http
    mode http
    http-reuse always
    server echo %[4]s

frontend grpc
    mode http
    bind %[2]s proto h2
    default_backend grpc

backend grpc
    mode http
    http-reuse always
    server echo %[5]s proto h2

frontend tcp
    mode tcp
    bind %[3]s
    default_backend tcp

backend tcp
    mode tcp
    server echo %[6]s
`

// startHAProxy starts HAProxy in front of the echo server. It tries three times with
// new ports, in case another process took one of them after it was found free.
func startHAProxy(ctx context.Context, bin, dir string, echo *echoServer) (*haproxyPath, error) {
	var errs []error
	for range 3 {
		p, err := startHAProxyOnce(ctx, bin, dir, echo)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startHAProxyOnce(ctx context.Context, bin, dir string, echo *echoServer) (*haproxyPath, error) {
	ports, err := child.FreePorts(3)
	if err != nil {
		return nil, err
	}
	p := &haproxyPath{http: child.Loopback(ports[0]), grpc: child.Loopback(ports[1]), tcp: child.Loopback(ports[2])}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, p.http, p.grpc, p.tcp, echo.http, echo.grpc, echo.tcp), 0o644); err != nil {
		return nil, fmt.Errorf("writing HAProxy's configuration: %w", err)
	}
	// -db: stay in the foreground, one process (no master-worker).
	if p.Child, err = child.Start("haproxy", filepath.Join(dir, "haproxy.log"), []string{bin, "-db", "-f", cfg}, nil); err != nil {
		return nil, err
	}
	for _, addr := range []string{p.http, p.grpc, p.tcp} {
		if err := child.WaitDial(ctx, p.Child, addr); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *haproxyPath) target(workload string) target {
	switch workload {
	case WorkloadGRPC:
		return target{dest: p.grpc}
	case WorkloadTCP:
		return target{dest: "tcp://" + p.tcp}
	default:
		return target{dest: "http://" + p.http + "/echo"}
	}
}
func (p *haproxyPath) procs() []measured { return []measured{{name: "haproxy", pid: p.PID()}} }
func (p *haproxyPath) stop()             { p.Child.Stop(5 * time.Second) }

// haproxyVersion returns the first line of `haproxy -v`.
func haproxyVersion(bin string) string {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		return ""
	}
	// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return ""
	}
	return f[0] + " " + f[2]
}

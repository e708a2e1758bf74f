package local

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"trellis.dev/trellis/internal/api/v1alpha1"
	"trellis.dev/trellis/internal/bootstrap"
	"trellis.dev/trellis/internal/config"
)

// addrs are the addresses up chose for one workload. They are kept when a changed
// workload restarts, so its endpoints and outbound listener stay where they were.
type addrs struct {
	Admin    string
	Metrics  string
	Outbound string
	// Inbound and Target are keyed by portKey.
	Inbound map[string]string
	Target  map[string]string
}

// plan is everything needed to run one workload: its sidecar's bootstrap and its
// app's command line and environment.
type plan struct {
	Key       string // namespace/name
	Workload  config.Workload
	Digest    string // canonical form of the workload; a change restarts it
	Addrs     *addrs
	Bootstrap bootstrap.Bootstrap
	// BootstrapPath is where the bootstrap file is written.
	BootstrapPath string
	// AppArgv is the app's expanded command line; nil when the workload has none.
	AppArgv []string
	AppEnv  []string
}

// workloadKey is the namespace/name of a workload.
func workloadKey(w *v1alpha1.Workload) string {
	return w.Namespace + "/" + w.Name
}

// portKey names a workload port in addresses and in the state file: its name, else
// its number.
func portKey(p v1alpha1.WorkloadPort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}

// digest is a canonical form of a workload, ignoring where it was written.
func digest(w *v1alpha1.Workload) string {
	raw, err := json.Marshal(w)
	if err != nil {
		// A Workload is plain data; Marshal cannot fail on it.
		panic(fmt.Sprintf("encoding workload %s: %v", workloadKey(w), err))
	}
	return string(raw)
}

// bootstrapSecurity are the sidecars' mutual TLS settings.
type bootstrapSecurity struct {
	XDSCAFile, TokenFile, TrustDomain string
	CertTTL, CertRenewEvery           time.Duration
}

// planInput is what a plan is built from besides the workload.
type planInput struct {
	XDS      string
	Security bootstrapSecurity
	Delta    bool
	// AccessLog is the sidecars' access log setting (bootstrap accessLog).
	AccessLog string
	DataDir   string
	Binary    string
	BaseEnv   []string
	Ports     *allocator
	// Prev are the addresses of the workload's previous run, if any.
	Prev *addrs
}

// newPlan works out the addresses, bootstrap, command line and environment of w.
func newPlan(w config.Workload, in planInput) (*plan, error) {
	key := workloadKey(w.Workload)
	a, err := allocate(w.Workload, in.Ports, in.Prev)
	if err != nil {
		return nil, fmt.Errorf("choosing addresses for workload %s: %w", key, err)
	}
	spec := &w.Spec
	md := bootstrap.Metadata{
		Workload:       w.Name,
		Namespace:      w.Namespace,
		Labels:         w.Labels,
		ServiceAccount: spec.ServiceAccount,
		Service:        spec.Service,
		Outbound:       a.Outbound,
	}
	for _, p := range spec.Ports {
		k := portKey(p)
		md.Ports = append(md.Ports, bootstrap.Port{
			Name:     p.Name,
			Port:     uint32(p.Port),
			Protocol: string(p.Protocol),
			Target:   a.Target[k],
			Inbound:  a.Inbound[k],
		})
	}
	for _, u := range spec.Upstreams {
		md.Upstreams = append(md.Upstreams, bootstrap.Upstream{Service: u.Service, Port: uint32(u.Port), Bind: u.Bind})
	}
	// Validated by config: a positive duration or empty.
	drain, _ := time.ParseDuration(spec.DrainPeriod)
	cluster := spec.Service
	if cluster == "" {
		cluster = w.Name
	}
	pl := &plan{
		Key:      key,
		Workload: w,
		Digest:   digest(w.Workload),
		Addrs:    a,
		Bootstrap: bootstrap.Bootstrap{
			Node:           bootstrap.Node{ID: w.Name + "." + w.Namespace, Cluster: cluster, Metadata: md},
			XDS:            in.XDS,
			XDSCAFile:      in.Security.XDSCAFile,
			TokenFile:      in.Security.TokenFile,
			TrustDomain:    in.Security.TrustDomain,
			CertTTL:        bootstrap.Duration(in.Security.CertTTL),
			CertRenewEvery: bootstrap.Duration(in.Security.CertRenewEvery),
			Delta:          in.Delta,
			Admin:          a.Admin,
			Metrics:        a.Metrics,
			AccessLog:      in.AccessLog,
			DrainPeriod:    bootstrap.Duration(drain),
		},
		BootstrapPath: filepath.Join(in.DataDir, "proxies", w.Name+"."+w.Namespace+".json"),
	}
	if len(spec.Command) > 0 {
		pl.AppEnv = appEnv(in.BaseEnv, w.Workload, a, in.Binary)
		lookup := envLookup(pl.AppEnv)
		for _, arg := range spec.Command {
			pl.AppArgv = append(pl.AppArgv, expand(arg, lookup))
		}
	}
	return pl, nil
}

// writeBootstrap stores the plan's bootstrap file, creating its directory.
func (pl *plan) writeBootstrap() error {
	if err := os.MkdirAll(filepath.Dir(pl.BootstrapPath), 0o700); err != nil {
		return fmt.Errorf("creating bootstrap directory: %w", err)
	}
	if err := pl.Bootstrap.Write(pl.BootstrapPath); err != nil {
		return fmt.Errorf("writing bootstrap of %s: %w", pl.Key, err)
	}
	return nil
}

// allocate chooses the workload's addresses: fixed ones from its spec, the previous
// run's where they still apply, and free loopback ports for the rest.
func allocate(w *v1alpha1.Workload, ports *allocator, prev *addrs) (*addrs, error) {
	if prev == nil {
		prev = &addrs{}
	}
	a := &addrs{Inbound: map[string]string{}, Target: map[string]string{}}
	var err error
	if a.Admin, err = ports.reuseOrPick(prev.Admin); err != nil {
		return nil, err
	}
	if a.Metrics, err = ports.reuseOrPick(prev.Metrics); err != nil {
		return nil, err
	}
	if w.Spec.Outbound != "" {
		a.Outbound = w.Spec.Outbound
	} else if a.Outbound, err = ports.reuseOrPick(prev.Outbound); err != nil {
		return nil, err
	}
	for _, p := range w.Spec.Ports {
		k := portKey(p)
		if a.Inbound[k], err = ports.reuseOrPick(prev.Inbound[k]); err != nil {
			return nil, err
		}
		if p.TargetPort != 0 {
			a.Target[k] = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.TargetPort)))
		} else if a.Target[k], err = ports.reuseOrPick(prev.Target[k]); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// reserveFixed keeps the ports a workload fixes (target ports, outbound, upstream
// binds) from being chosen for anything else, whichever workload is planned first.
func reserveFixed(ports *allocator, w *v1alpha1.Workload) {
	for _, p := range w.Spec.Ports {
		if p.TargetPort != 0 {
			ports.reserve(int(p.TargetPort))
		}
	}
	addrs := []string{w.Spec.Outbound}
	for _, u := range w.Spec.Upstreams {
		addrs = append(addrs, u.Bind)
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.Atoi(port); err == nil && n != 0 {
				ports.reserve(n)
			}
		}
	}
}

// appEnv is the app's environment: the parent's, then the workload's env (whose
// values may refer to the variables below as $(VAR)), then what the mesh provides:
// PORT, PORT_<NAME>, HTTP_PROXY, http_proxy, NO_PROXY, no_proxy, TRELLIS_OUTBOUND,
// TRELLIS_WORKLOAD, TRELLIS_NAMESPACE and TRELLIS_BINARY. The mesh's values win,
// because the sidecar is configured with them.
func appEnv(base []string, w *v1alpha1.Workload, a *addrs, binary string) []string {
	var mesh []string
	for i, p := range w.Spec.Ports {
		_, port, _ := net.SplitHostPort(a.Target[portKey(p)])
		if i == 0 {
			mesh = append(mesh, "PORT="+port)
		}
		if p.Name != "" {
			mesh = append(mesh, "PORT_"+envName(p.Name)+"="+port)
		}
	}
	proxy := "http://" + a.Outbound
	mesh = append(mesh,
		"HTTP_PROXY="+proxy, "http_proxy="+proxy,
		"NO_PROXY=localhost,127.0.0.1", "no_proxy=localhost,127.0.0.1",
		"TRELLIS_OUTBOUND="+a.Outbound,
		"TRELLIS_WORKLOAD="+w.Name,
		"TRELLIS_NAMESPACE="+w.Namespace,
		"TRELLIS_BINARY="+binary,
	)
	lookup := envLookup(append(append([]string(nil), base...), mesh...))
	env := append([]string(nil), base...)
	for _, k := range slices.Sorted(maps.Keys(w.Spec.Env)) {
		env = append(env, k+"="+expand(w.Spec.Env[k], lookup))
	}
	return append(env, mesh...)
}

// envName turns a port name into the suffix of its PORT_ variable.
func envName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// allocator hands out free loopback ports, never the same one twice in a run.
type allocator struct {
	mu   sync.Mutex
	used map[int]bool
}

func newAllocator() *allocator {
	return &allocator{used: map[int]bool{}}
}

// reserve marks a port chosen by the user as taken.
func (al *allocator) reserve(port int) {
	al.mu.Lock()
	defer al.mu.Unlock()
	al.used[port] = true
}

// reuseOrPick returns prev when set, else a free port on 127.0.0.1.
func (al *allocator) reuseOrPick(prev string) (string, error) {
	if prev != "" {
		return prev, nil
	}
	port, err := al.pick()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// pick asks the kernel for a free port on 127.0.0.1, skipping ports already handed out.
func (al *allocator) pick() (int, error) {
	al.mu.Lock()
	defer al.mu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !al.used[port] {
			al.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("finding a free port: every port offered was taken")
}

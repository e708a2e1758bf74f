// Package local runs a whole mesh on one machine: `trellis up`.
//
// Run loads the mesh files (internal/config), chooses free loopback ports for every
// address the files leave open, and starts, as child processes of its own:
//
//   - the control plane, `trellis control -f FILE...`, which watches the same files,
//     with its data directory under up's (DATA/control: the CA, the join token);
//   - for each Workload, a sidecar, `trellis proxy --bootstrap FILE`, whose bootstrap
//     (internal/bootstrap) carries the workload's ports, their app (target) and
//     inbound addresses, its outbound address and upstreams, and its mutual TLS
//     settings: the control plane's TLS address and the trust bundle that verifies
//     it, the join token file, the trust domain and certificate lifetimes. Sidecars
//     start once the control plane has written the join token and trust bundle;
//   - for each Workload with a command, its app, once its sidecar answers /ready (or
//     after a while regardless), with PORT, PORT_<NAME>, HTTP_PROXY, TRELLIS_OUTBOUND
//     and friends in its environment and $(VAR) expanded in its command as
//     Kubernetes does.
//
// Every child runs in its own process group, its output prefixed line by line with
// [control], [<workload>/proxy] or [<workload>]. A child that exits is restarted with
// backoff (proc). When every sidecar is ready the state file is written atomically
// (State), and rewritten when a pid or a workload changes.
//
// The files are watched (their directories, so that editors' rename-on-save works);
// after a debounce they are reloaded: removed workloads stop, changed ones restart
// on the same addresses, new ones start. An invalid edit is logged, one record per
// problem with file and line, and the mesh keeps running as it was.
//
// When Run's context ends, it stops the apps, then the sidecars, then the control
// plane: SIGTERM to each process group (SIGINT to the sidecars, which then skip their
// drain period: their apps are gone), SIGKILL after a grace period.
//
// Concurrency: Run's goroutine applies the initial config and later shuts down; in
// between the watcher goroutine applies reloads, so apply never runs twice at once.
// supervisor.mu guards the map of running workloads, which the state loop reads.
// Each proc owns one goroutine that starts, waits for and restarts its child; each
// workloadRun owns the goroutine that starts its app. Stop methods wait for them.
package local

// Package bench is the data-plane benchmark harness that `make bench` runs
// (cmd/meshbench): fortio load through a direct connection, one HAProxy hop and two
// Trellis sidecars, side by side in one run on loopback, reported as a markdown
// table, JSON and a latency chart. docs/benchmarks.md is the user's guide.
//
// Data flow of Run:
//
//	echo server (fortio server: HTTP, gRPC, TCP)  <─ every path ends here
//	paths: direct | haproxy (child process) | trellis (`trellis up`, child process)
//	probe each path; settle the Trellis ones (their sidecars give back their
//	    start-up pages a few seconds after they are ready)
//	for each workload (http, grpc, tcp, http-max), for each path:
//	    /proc samples of the path's proxies ─> fortio load -json ─> /proc samples
//	    ─> Result (percentiles, added over direct, CPU per 1000 requests, peak RSS)
//	Go benchmarks (go test -bench) ─> GoBench
//	Report ─> <name>.md, <name>.json, <name>.png, and the markdown on Config.Out
//
// The Trellis paths differ only in their mesh file (meshParams): trellis has mTLS off
// (a PeerAuthentication in mode DISABLE, since without one auto mTLS would encrypt),
// trellis-mtls has it on (STRICT), trellis-h2 carries HTTP/1.1 over h2c between the
// sidecars.
//
// Concurrency: Run is sequential; the only goroutines are those of the child
// processes (internal/child), each owned by its Child and ended by Stop, which Run
// calls for every process it started before it returns. Runs do not overlap: the
// numbers of one run are never shared with another's load.
//
// bench/xdsload is the control-plane counterpart (cmd/xdsload), bench/procstat reads
// CPU and memory from /proc for both.
package bench

package cli

import (
	"runtime/debug"
	"time"
)

// defaultReleaseStartupPages is how long after it is first ready the sidecar gives
// back its binary's start-up pages (proxy.Config.ReleaseStartupPages): long enough
// for the first requests and handshakes to have touched what serving needs, so that
// the release is not undone at once.
const defaultReleaseStartupPages = 5 * time.Second

// defaultProxyMemoryLimitMiB is the sidecar's soft memory limit (Go's GOMEMLIMIT) when
// neither --memory-limit-mib nor the GOMEMLIMIT environment variable sets one.
//
// Why a limit: with only GOGC=100 the heap may grow to twice what is live after each
// collection, and a burst of requests leaves that peak behind for minutes before the
// scavenger returns it. A soft limit makes the collector run earlier and the scavenger
// return memory sooner as the process nears it. Why 64 MiB: measured under the
// benchmark's load (1000 req/s, 16 connections), a sidecar's anonymous memory (heap,
// stacks) peaks at about 21 MiB, so the limit never bites in steady state and costs
// no CPU there; it only caps bursts. It is not what makes the sidecar's RSS: the rest
// is the trellis binary's own file-backed pages (RssFile), which no GC setting
// changes; --release-startup-pages gives back those only start-up used
// (docs/benchmarks.md, "Sidecar memory"). GOGC stays at
// 100, and a sidecar whose live heap really exceeds the limit is not starved: the
// runtime caps the collector at about half the CPU and lets the heap pass a soft limit.
const defaultProxyMemoryLimitMiB = 64

// proxyMemoryLimit is the soft memory limit in bytes that the sidecar sets for itself
// from the --memory-limit-mib flag (0: none), or 0 when GOMEMLIMIT is set in the
// environment: the operator's setting, applied by the runtime, wins.
func proxyMemoryLimit(mib int, getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") != "" || mib <= 0 {
		return 0
	}
	return int64(mib) << 20
}

// setProxyMemoryLimit applies proxyMemoryLimit and returns the limit set (0: none).
func setProxyMemoryLimit(mib int, getenv func(string) string) int64 {
	limit := proxyMemoryLimit(mib, getenv)
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return limit
}

package cli

import (
	"fmt"
	"runtime"
	"strconv"
)

// defaultProxyConcurrency is how many threads run the sidecar's Go code at once
// (GOMAXPROCS) when neither --concurrency, $TRELLIS_CONCURRENCY nor GOMAXPROCS in the
// environment says otherwise: one, as a sidecar serves one workload.
//
// Why one: measured with the benchmark's load (1000 req/s, 16 connections, 1 KiB,
// docs/benchmarks.md "Concurrency"), a sidecar with one thread spends about 15 %
// less CPU per request than with two at the same latency, and its maximum
// throughput on the 2-core benchmark machine is the same: with two, the runtime
// wakes a second thread to look for work on nearly every request and puts it back
// to sleep (futex and scheduler time). A workload that needs more from its sidecar
// raises it; 0 uses every CPU the process may use (Go's default, which follows a
// container's CPU limit).
const defaultProxyConcurrency = 1

// concurrencyEnv sets the concurrency when --concurrency is not given.
const concurrencyEnv = "TRELLIS_CONCURRENCY"

// proxyConcurrency is the GOMAXPROCS the sidecar sets for itself: --concurrency when
// given (changed), else $TRELLIS_CONCURRENCY, else none (0) when GOMAXPROCS is in the
// environment (the runtime has applied it), else defaultProxyConcurrency. A result of
// 0 means: leave the runtime's own choice.
func proxyConcurrency(flag int, changed bool, getenv func(string) string) (int, error) {
	if changed {
		if flag < 0 {
			return 0, fmt.Errorf("--concurrency %d: want 0 (every CPU) or more", flag)
		}
		return flag, nil
	}
	if v := getenv(concurrencyEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q: want 0 (every CPU) or a number of threads", concurrencyEnv, v)
		}
		return n, nil
	}
	if getenv("GOMAXPROCS") != "" {
		return 0, nil
	}
	return defaultProxyConcurrency, nil
}

// setProxyConcurrency applies proxyConcurrency and returns the GOMAXPROCS in effect.
func setProxyConcurrency(flag int, changed bool, getenv func(string) string) (int, error) {
	n, err := proxyConcurrency(flag, changed, getenv)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0), nil
}

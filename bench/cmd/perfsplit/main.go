// Command perfsplit reads `perf script -F comm,ip,sym` output (samples with call
// chains, from `perf record -g` of one process) and splits the samples into the
// categories that explain where a sidecar's CPU goes: the kernel's socket work under
// reads and writes, thread sleep and wake-up, the Go scheduler, sysmon, GC and
// allocation, TLS, net/http, and Trellis's own code. Each sample goes to the first
// category that matches walking its stack from the leaf up, so a malloc inside
// net/http counts as allocation and a kernel frame under a write counts as the write.
//
//	perf record -F 4000 -g -p PID -o perf.data -- sleep 10
//	perf script -i perf.data -F comm,ip,sym | go run ./bench/cmd/perfsplit
//
// docs/benchmarks.md ("Where the CPU goes") shows its output for the sidecars.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
)

// category is a named set of frame-name prefixes (or substrings, for kernel frames).
type category struct {
	name  string
	match func(frame string) bool
}

func prefix(ps ...string) func(string) bool {
	return func(f string) bool {
		for _, p := range ps {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
		return false
	}
}

// categories, tried in order on each frame from the leaf up; the first frame that
// matches any category decides. A stack none matches is otherRuntime when it holds a
// runtime frame, else "kernel and other".
var categories = []category{
	{"sysmon (runtime monitor thread: usleep, retake)", prefix("runtime.sysmon")},
	{"GC and allocation", prefix("runtime.mallocgc", "runtime.newobject", "runtime.makeslice", "runtime.growslice",
		"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.scanobject", "runtime.scanObject", "runtime.bgsweep",
		"runtime.bgscavenge", "runtime.gcStart", "runtime.gcMarkDone", "runtime.markroot", "runtime.memclrNoHeapPointers",
		"runtime.concatstring", "runtime.slicebytetostring", "runtime.rawstring")},
	{"socket writes (syscall; the kernel delivers loopback data to the peer in it)", prefix("syscall.write", "internal/poll.(*FD).Write", "syscall.sendmsg",
		"trellis.dev/trellis/internal/proxy/internal/rawtcp.(*Conn).Write")},
	{"socket reads and polls (syscall)", prefix("syscall.read", "internal/poll.(*FD).Read", "internal/poll.(*FD).RawRead", "syscall.recvfrom", "syscall.Recvfrom",
		"trellis.dev/trellis/internal/proxy/internal/rawtcp.(*Conn).Read")},
	{"thread sleep and wake-up (futex)", prefix("runtime.futex", "runtime.notesleep", "runtime.notewakeup", "runtime.notetsleep")},
	{"netpoll (epoll)", prefix("runtime.netpoll")},
	{"Go scheduler", prefix("runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.goready", "runtime.ready",
		"runtime.gopark", "runtime.goexit0", "runtime.newproc", "runtime.mcall", "runtime.wakep", "runtime.startm",
		"runtime.stopm", "runtime.handoffp", "runtime.entersyscall", "runtime.exitsyscall", "runtime.reentersyscall")},
	{"TLS (crypto/tls, AES-GCM)", prefix("crypto/")},
	{"net/http, textproto, bufio", prefix("net/http", "net/textproto", "bufio.", "golang.org/x/net/http")},
	{"Trellis code (with the runtime helpers it calls: maps, copies, hashing)", prefix("trellis.dev/")},
}

// otherRuntime is a stack that no category matched but that holds runtime frames.
var otherRuntime = category{"Go runtime, other", prefix("runtime.", "internal/runtime", "aeshash", "memeqbody", "indexbytebody")}

func main() {
	counts := map[string]int{}
	total := 0
	var stack []string
	flush := func() {
		if len(stack) == 0 {
			return
		}
		total++
		counts[classify(stack)]++
		stack = stack[:0]
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			flush() // a sample's header line (comm)
			continue
		}
		// "\t    addr symbol+off (dso)": the symbol is the second field.
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			stack = append(stack, fields[1])
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "perfsplit:", err)
		os.Exit(1)
	}
	if total == 0 {
		fmt.Fprintln(os.Stderr, "perfsplit: no samples on stdin (perf script -F comm,ip,sym of a perf record -g)")
		os.Exit(1)
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return counts[names[i]] > counts[names[j]] })
	fmt.Printf("| where | share of samples |\n|---|--:|\n")
	for _, n := range names {
		fmt.Printf("| %s | %.1f %% |\n", n, 100*float64(counts[n])/float64(total))
	}
	fmt.Printf("\n%d samples\n", total)
}

// classify returns the category of a stack given leaf first.
func classify(stack []string) string {
	for _, f := range stack {
		for _, c := range categories {
			if c.match(f) {
				return c.name
			}
		}
	}
	for _, f := range stack {
		if otherRuntime.match(f) {
			return otherRuntime.name
		}
	}
	return "kernel and other"
}

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"trellis.dev/trellis/bench/procstat"
)

// machineInfo describes this machine and the tools of the run.
func machineInfo(cfg Config) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(cfg.Fortio, "version").Output(); err == nil {
		m.Fortio, _, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	}
	if cfg.HAProxy != "" {
		m.HAProxy = haproxyVersion(cfg.HAProxy)
	}
	m.Trellis = trellisVersion(cfg.ModuleDir)
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// load1 is the 1-minute load average, 0 when unknown.
func load1(avg string) float64 {
	f, _, _ := strings.Cut(avg, " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// machineBusy returns the CPU time every CPU of the machine has spent busy (not
// idle, not waiting for I/O), from the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("reading /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line)
}

// parseCPULine sums user, nice, system, irq, softirq and steal of a /proc/stat
// "cpu" line.
func parseCPULine(line string) (time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("parsing /proc/stat: unexpected first line %q", line)
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / procstat.ClockTicks, nil
}

package telemetry

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// processCollectors are the sidecar's own figures on /stats/prometheus: the Go
// runtime's (go_*: heap, GC, goroutines, and the CPU the collector and the scavenger
// use, gcCPU), the process's (process_*: CPU, RSS, file descriptors) and
// memoryCollector's split of the RSS and page faults.
func processCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(gcCPU)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		memoryCollector{},
	}
}

// gcCPU adds to the Go collector's defaults the CPU the garbage collector and the
// scavenger use (go_cpu_classes_gc_total_cpu_seconds_total,
// go_cpu_classes_scavenge_total_cpu_seconds_total) and the collections
// (go_gc_cycles_total_gc_cycles_total): what a heap target (GOGC, the memory limit)
// costs per request.
var gcCPU = collectors.GoRuntimeMetricsRule{
	Matcher: regexp.MustCompile(`^(/cpu/classes/(gc|scavenge)/total:cpu-seconds|/gc/cycles/total:gc-cycles)$`),
}

var (
	residentDesc = prometheus.NewDesc("trellis_process_resident_memory_bytes",
		"Resident memory of the sidecar process by kind (RssAnon, RssFile, RssShmem of /proc/self/status): anon is the heap and stacks, file the binary's and libraries' pages.",
		[]string{"kind"}, nil)
	faultsDesc = prometheus.NewDesc("trellis_process_page_faults_total",
		"Page faults of the sidecar process (minflt, majflt of /proc/self/stat): a minor fault maps a page already in memory, a major one reads it from disk.",
		[]string{"kind"}, nil)
)

// memoryCollector reads /proc/self at every scrape. On a system without it (not
// Linux) it reports nothing.
type memoryCollector struct{}

var _ prometheus.Collector = memoryCollector{}

func (memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- residentDesc
	ch <- faultsDesc
}

func (memoryCollector) Collect(ch chan<- prometheus.Metric) {
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for kind, v := range residentKinds(status) {
			ch <- prometheus.MustNewConstMetric(residentDesc, prometheus.GaugeValue, float64(v), kind)
		}
	}
	if stat, err := os.ReadFile("/proc/self/stat"); err == nil {
		if minor, major, ok := pageFaults(stat); ok {
			ch <- prometheus.MustNewConstMetric(faultsDesc, prometheus.CounterValue, float64(minor), "minor")
			ch <- prometheus.MustNewConstMetric(faultsDesc, prometheus.CounterValue, float64(major), "major")
		}
	}
}

// residentKinds reads RssAnon, RssFile and RssShmem (kB) of a /proc/<pid>/status
// file, in bytes by kind.
func residentKinds(status []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		var kind string
		switch key {
		case "RssAnon":
			kind = "anon"
		case "RssFile":
			kind = "file"
		case "RssShmem":
			kind = "shmem"
		default:
			continue
		}
		if kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64); err == nil {
			out[kind] = kb << 10
		}
	}
	return out
}

// pageFaults reads minflt and majflt (fields 10 and 12) of a /proc/<pid>/stat
// line. Fields are counted after the command name's closing parenthesis, since the
// name may hold spaces.
func pageFaults(stat []byte) (minor, major uint64, ok bool) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[end+1:]))
	// f[0] is field 3 (state): minflt is field 10, majflt 12.
	if len(f) < 10 {
		return 0, 0, false
	}
	minor, err1 := strconv.ParseUint(f[7], 10, 64)
	major, err2 := strconv.ParseUint(f[9], 10, 64)
	return minor, major, err1 == nil && err2 == nil
}

// Package procstat reads a process's CPU time and memory from Linux's /proc: the
// numbers the benchmarks report per sidecar, per HAProxy and per control plane.
//
// CPU is utime+stime from /proc/<pid>/stat (every thread of the process, in clock
// ticks of 1/100 s), so a benchmark reads it before and after a run and takes the
// difference. Memory is VmRSS (now), VmHWM (the peak resident set size) and RssAnon
// and RssFile (what of RSS is anonymous, what file-backed) from /proc/<pid>/status; ResetPeak writes 5 to /proc/<pid>/clear_refs so that VmHWM
// starts again from the current RSS and the peak of one run can be read alone.
// Reading another user's process needs the same rights as reading its /proc files.
package procstat

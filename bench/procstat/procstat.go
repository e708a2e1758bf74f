package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times. It is 100
// on every Linux architecture Go supports.
const ClockTicks = 100

// CPU returns the CPU time (user + system, every thread) that process pid has used.
func CPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of process %d: %w", pid, err)
	}
	return parseStat(data)
}

// parseStat reads utime and stime (fields 14 and 15) from a /proc/<pid>/stat line.
// The command name (field 2) is in parentheses and may hold spaces, so fields are
// counted from the last ')'.
func parseStat(data []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("parsing /proc stat: no command name in %q", data)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state): utime is field 14, stime 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("parsing /proc stat: %d fields after the command name", len(fields))
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parsing /proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / ClockTicks, nil
}

// Memory is a process's resident memory, in bytes.
type Memory struct {
	// RSS is the resident set size now (VmRSS); Peak the highest it has been since the
	// process started or since ResetPeak (VmHWM).
	RSS, Peak uint64
	// Anon and File split RSS now: anonymous pages (heap, stacks; RssAnon) and
	// file-backed pages (the binary and libraries mapped; RssFile, shared with every
	// process that maps the same file and reclaimable). Zero on kernels without them.
	Anon, File uint64
}

// Mem returns process pid's resident memory.
func Mem(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	return parseStatus(data)
}

// parseStatus reads VmRSS, VmHWM, RssAnon and RssFile (in kB) from
// /proc/<pid>/status.
func parseStatus(data []byte) (Memory, error) {
	var m Memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		var field *uint64
		switch key {
		case "VmRSS":
			field = &m.RSS
		case "VmHWM":
			field = &m.Peak
		case "RssAnon":
			field = &m.Anon
		case "RssFile":
			field = &m.File
		}
		if !ok || field == nil {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("parsing /proc status %s: %w", key, err)
		}
		*field = kb * 1024
		if key == "VmRSS" || key == "VmHWM" {
			seen++
		}
	}
	if seen != 2 {
		return m, fmt.Errorf("parsing /proc status: VmRSS or VmHWM missing (a kernel thread or a zombie?)")
	}
	return m, nil
}

// ResetPeak makes process pid's peak RSS (VmHWM) start again from its current RSS.
func ResetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting peak RSS of process %d: %w", pid, err)
	}
	return nil
}

// Sample is a process's CPU time and memory at one moment.
type Sample struct {
	CPU time.Duration
	Mem Memory
}

// Read samples process pid.
func Read(pid int) (Sample, error) {
	cpu, err := CPU(pid)
	if err != nil {
		return Sample{}, err
	}
	mem, err := Mem(pid)
	if err != nil {
		return Sample{}, err
	}
	return Sample{CPU: cpu, Mem: mem}, nil
}

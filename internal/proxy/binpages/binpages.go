package binpages

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one line of /proc/<pid>/smaps with the fields Release reads.
type Mapping struct {
	Start, End uint64
	// Perms is "r-xp" and the like: read, write, execute, private or shared.
	Perms string
	// Dev and Inode name the mapped file ("00:00" and 0 for anonymous memory).
	Dev   string
	Inode uint64
	Path  string
	// Rss is the mapping's resident size; Anonymous what of it is anonymous (in a
	// private file mapping: the pages that were written to, copied on write).
	Rss, Anonymous uint64
}

// Released says what Release did.
type Released struct {
	// Mappings is how many of the executable's mappings were released.
	Mappings int
	// Bytes is their resident size just before.
	Bytes uint64
}

// Release drops this process's resident pages of its executable's read-only,
// private mappings that hold nothing but the file's own contents: the code and the
// read-only data. The pages stay in the page cache; the next touch of one maps it
// again (a minor fault). Writable mappings and mappings with anonymous pages are
// never released.
func Release() (Released, error) {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return Released{}, fmt.Errorf("reading the process's mappings: %w", err)
	}
	maps, err := Parse(bytes.NewReader(data))
	if err != nil {
		return Released{}, err
	}
	pc, _, _, _ := runtime.Caller(0)
	var r Released
	for _, m := range Releasable(maps, uint64(pc)) {
		if err := dontNeed(m.Start, m.End-m.Start); err != nil {
			return r, fmt.Errorf("releasing %s %x-%x: %w", m.Path, m.Start, m.End, err)
		}
		r.Mappings++
		r.Bytes += m.Rss
	}
	return r, nil
}

// dontNeed drops the process's pages of [start, start+length): madvise(2) with
// MADV_DONTNEED. Called on clean private file pages only (Releasable), it loses
// nothing: the kernel maps the file's page again on the next touch.
func dontNeed(start, length uint64) error {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(length), unix.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}

// Releasable returns the mappings of maps that Release may drop: those of the file
// mapped at address pc (the executable, when pc is an address of its code) that are
// private, not writable and hold no anonymous page.
func Releasable(maps []Mapping, pc uint64) []Mapping {
	var exe *Mapping
	for i := range maps {
		if maps[i].Start <= pc && pc < maps[i].End {
			exe = &maps[i]
			break
		}
	}
	if exe == nil || exe.Inode == 0 {
		return nil
	}
	var out []Mapping
	for _, m := range maps {
		if m.Dev != exe.Dev || m.Inode != exe.Inode || m.Path != exe.Path {
			continue
		}
		if len(m.Perms) != 4 || m.Perms[0] != 'r' || m.Perms[1] != '-' || m.Perms[3] != 'p' || m.Anonymous != 0 {
			continue
		}
		out = append(out, m)
	}
	return out
}

// Parse reads the mappings of a /proc/<pid>/smaps file.
func Parse(r io.Reader) ([]Mapping, error) {
	var maps []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, val, isField := strings.Cut(line, ":")
		if isField && !strings.Contains(key, " ") && !strings.Contains(key, "-") {
			if len(maps) == 0 {
				return nil, fmt.Errorf("parsing smaps: field %q before any mapping", key)
			}
			m := &maps[len(maps)-1]
			switch key {
			case "Rss":
				m.Rss, _ = kiB(val)
			case "Anonymous":
				n, err := kiB(val)
				if err != nil {
					return nil, fmt.Errorf("parsing smaps: Anonymous of %x: %w", m.Start, err)
				}
				m.Anonymous = n
			}
			continue
		}
		m, err := parseHeader(line)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing smaps: %w", err)
	}
	return maps, nil
}

// parseHeader reads "start-end perms offset dev inode [path]".
func parseHeader(line string) (Mapping, error) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return Mapping{}, fmt.Errorf("parsing smaps: %q is not a mapping", line)
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	inode, err3 := strconv.ParseUint(f[4], 10, 64)
	if !ok || errors.Join(err1, err2, err3) != nil || end < start {
		return Mapping{}, fmt.Errorf("parsing smaps: %q is not a mapping", line)
	}
	m := Mapping{Start: start, End: end, Perms: f[1], Dev: f[3], Inode: inode}
	// The path is the rest of the line after the five fields; it may hold spaces.
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " ")
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	m.Path = strings.TrimSpace(rest)
	return m, nil
}

// kiB reads a "   123 kB" value in bytes.
func kiB(val string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
	return n << 10, err
}

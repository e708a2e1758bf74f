package binpages

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const smaps = `00400000-02adc000 r-xp 00000000 fd:01 1234 /usr/local/bin/trellis
Size:              39792 kB
Rss:               25136 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
02adc000-05a45000 r--p 026dc000 fd:01 1234 /usr/local/bin/trellis
Rss:               37796 kB
Anonymous:             0 kB
05a45000-05b19000 rw-p 05645000 fd:01 1234 /usr/local/bin/trellis
Rss:                 848 kB
Anonymous:           120 kB
05b19000-07b6c000 rw-p 00000000 00:00 0
Rss:                 168 kB
Anonymous:           168 kB
06000000-06001000 r--p 00010000 fd:01 1234 /usr/local/bin/trellis
Rss:                   4 kB
Anonymous:             4 kB
06001000-06002000 r--s 00020000 fd:01 1234 /usr/local/bin/trellis
Rss:                   4 kB
Anonymous:             0 kB
7ff1c79e8000-7ff1c7b3e000 r-xp 00026000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 800 kB
Anonymous:             0 kB
7ff1c7b3f000-7ff1c7b40000 r--p 00000000 fd:01 77 /tmp/a file with spaces
Rss:                   4 kB
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
Anonymous:            12 kB
`

func TestParse(t *testing.T) {
	maps, err := Parse(strings.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 9 {
		t.Fatalf("Parse: %d mappings, want 9", len(maps))
	}
	want := Mapping{Start: 0x02adc000, End: 0x05a45000, Perms: "r--p", Dev: "fd:01", Inode: 1234,
		Path: "/usr/local/bin/trellis", Rss: 37796 << 10}
	if diff := cmp.Diff(want, maps[1]); diff != "" {
		t.Errorf("rodata mapping (-want +got):\n%s", diff)
	}
	if got := maps[7].Path; got != "/tmp/a file with spaces" {
		t.Errorf("path with spaces = %q", got)
	}
	if got := maps[8].Path; got != "[stack]" {
		t.Errorf("stack path = %q", got)
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	for _, in := range []string{"Rss: 4 kB\n", "not a mapping at all\n", "0400-0300 r--p 0 fd:01 1 /x\n"} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
}

func TestReleasable(t *testing.T) {
	maps, err := Parse(strings.NewReader(smaps))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pc   uint64
		want []uint64 // start addresses
	}{
		// Code and read-only data; never the writable data, the read-only page that
		// was written to (relocated), the shared mapping, nor another file.
		{name: "executable", pc: 0x00401234, want: []uint64{0x00400000, 0x02adc000}},
		{name: "pc in a library", pc: 0x7ff1c79e9000, want: []uint64{0x7ff1c79e8000}},
		{name: "pc in anonymous memory", pc: 0x05b19100},
		{name: "pc nowhere", pc: 0x10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			for _, m := range Releasable(maps, tt.pc) {
				got = append(got, m.Start)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Releasable (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRelease releases the test binary's own pages, after mapping all of them: the
// resident size of the released mappings drops, and the process goes on running
// code and reading data from them.
func TestRelease(t *testing.T) {
	before := populate(t)
	r, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings < 2 {
		t.Errorf("Release: %d mappings, want the code and the read-only data", r.Mappings)
	}
	after := exeResident(t)
	t.Logf("released %d mappings, %d KiB; resident %d KiB before, %d KiB after", r.Mappings, r.Bytes>>10, before>>10, after>>10)
	// What the test runs after the release (reading smaps, parsing) maps some pages
	// again, so after is not zero; the sidecar's test (internal/proxy) checks the drop
	// of a large binary under traffic.
	if r.Bytes < before*9/10 || after >= before {
		t.Errorf("resident size of the executable's read-only mappings: %d KiB before, %d KiB after, %d KiB released; want all of it released",
			before>>10, after>>10, r.Bytes>>10)
	}
	// Code and read-only data come back from the file.
	if got := strings.ToUpper(smaps[:8]); got != "00400000" {
		t.Errorf("read-only data after the release: %q", got)
	}
	if _, err := Parse(strings.NewReader(smaps)); err != nil {
		t.Errorf("Parse after the release: %v", err)
	}
}

// populate maps every page of the test binary's releasable mappings
// (MADV_POPULATE_READ) and returns their resident size.
func populate(t *testing.T) uint64 {
	t.Helper()
	for _, m := range exeMappings(t) {
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_POPULATE_READ)
		if errno != 0 {
			t.Fatalf("populating %x-%x: %v", m.Start, m.End, errno)
		}
	}
	return exeResident(t)
}

func exeResident(t *testing.T) uint64 {
	t.Helper()
	var rss uint64
	for _, m := range exeMappings(t) {
		rss += m.Rss
	}
	return rss
}

func exeMappings(t *testing.T) []Mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	maps, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	pc, _, _, _ := runtime.Caller(0)
	return Releasable(maps, uint64(pc))
}

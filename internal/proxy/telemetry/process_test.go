package telemetry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResidentKinds(t *testing.T) {
	status := []byte("Name:\ttrellis\nVmRSS:\t   44032 kB\nRssAnon:\t   22528 kB\nRssFile:\t   21504 kB\nRssShmem:\t       0 kB\nThreads:\t10\n")
	want := map[string]uint64{"anon": 22528 << 10, "file": 21504 << 10, "shmem": 0}
	if diff := cmp.Diff(want, residentKinds(status)); diff != "" {
		t.Errorf("residentKinds (-want +got):\n%s", diff)
	}
}

func TestPageFaults(t *testing.T) {
	tests := []struct {
		name         string
		stat         string
		minor, major uint64
		ok           bool
	}{
		{name: "plain", stat: "1234 (trellis) S 1 1234 1234 0 -1 4194560 9740 0 3 0 150 51 0 0 20 0 10 0",
			minor: 9740, major: 3, ok: true},
		{name: "command name with spaces and parentheses", stat: "1234 (a b) c) S 1 1234 1234 0 -1 4194560 17 0 2 0 150 51",
			minor: 17, major: 2, ok: true},
		{name: "truncated", stat: "1234 (trellis) S 1 1234"},
		{name: "no command name", stat: "garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			minor, major, ok := pageFaults([]byte(tt.stat))
			if minor != tt.minor || major != tt.major || ok != tt.ok {
				t.Errorf("pageFaults = %d, %d, %v; want %d, %d, %v", minor, major, ok, tt.minor, tt.major, tt.ok)
			}
		})
	}
}

package procstat

import (
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "plain",
			line: "123 (trellis) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200 18446744073709551615",
			want: 3 * time.Second,
		},
		{
			name: "command with spaces and parentheses",
			line: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1",
			want: 30 * time.Millisecond,
		},
		{name: "truncated", line: "7 (x) R 1 2", wantErr: true},
		{name: "no command", line: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat() error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseStat() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    Memory
		wantErr bool
	}{
		{
			name:   "process",
			status: "Name:\ttrellis\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    4096 kB\nRssFile:\t    6000 kB\nRssShmem:\t   144 kB\nThreads:\t9\n",
			want:   Memory{RSS: 10240 * 1024, Peak: 20480 * 1024, Anon: 4096 * 1024, File: 6000 * 1024},
		},
		{name: "kernel thread", status: "Name:\tkthreadd\nThreads:\t1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.status))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatus() error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseStatus() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadSelf(t *testing.T) {
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Mem.RSS == 0 || s.Mem.Peak < s.Mem.RSS {
		t.Errorf("Read(self) memory = %+v, want RSS > 0 and Peak >= RSS", s.Mem)
	}
	if err := ResetPeak(os.Getpid()); err != nil {
		t.Skipf("clear_refs not writable here: %v", err)
	}
}

package check

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The checks against a real API server are in internal/cli (check_test.go), which
// runs `trellis check` before and after an install.

func TestVersionResult(t *testing.T) {
	tests := []struct {
		name         string
		major, minor string
		want         Status
	}{
		{name: "current", major: "1", minor: "37", want: OK},
		{name: "oldest supported", major: "1", minor: "29", want: OK},
		{name: "provider suffix", major: "1", minor: "30+", want: OK},
		{name: "too old", major: "1", minor: "28", want: Fail},
		{name: "unreadable", major: "", minor: "", want: Warn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, versionResult(tt.major, tt.minor).Status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteAndFailed(t *testing.T) {
	results := []Result{{"a", OK, ""}, {"b", Fail, "why"}, {"c", Warn, "hm"}}
	var buf bytes.Buffer
	if err := Write(&buf, results); err != nil {
		t.Fatal(err)
	}
	want := "STATUS  CHECK  DETAIL\nok      a      -\nfail    b      why\nwarn    c      hm\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("Write (-want +got):\n%s", diff)
	}
	if got := Failed(results); got != 1 {
		t.Errorf("Failed = %d, want 1", got)
	}
	if strings.Contains(buf.String(), "\t") {
		t.Error("tabs left in the output")
	}
}

package bench

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPULine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    time.Duration
		wantErr bool
	}{
		// user nice system idle iowait irq softirq steal: busy = 100+1+50+2+3+4 ticks.
		{name: "busy", line: "cpu  100 1 50 9000 7 2 3 4 0 0", want: 1600 * time.Millisecond},
		{name: "not the cpu line", line: "intr 1 2 3 4 5 6 7 8 9", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPULine(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

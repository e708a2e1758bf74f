package cli

import (
	"strings"
	"testing"
	"time"

	"trellis.dev/trellis/internal/bootstrap"
)

func TestDrainPeriodPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       string
		bootstrap time.Duration
		want      time.Duration
		wantErr   string
	}{
		{name: "bootstrap only", bootstrap: 7 * time.Second, want: 7 * time.Second},
		{name: "none: the sidecar's default applies later", want: 0},
		{name: "environment wins over the bootstrap", env: "2s", bootstrap: 7 * time.Second, want: 2 * time.Second},
		{name: "flag wins over both", args: []string{"--drain-period", "1.5s"}, env: "2s", bootstrap: 7 * time.Second, want: 1500 * time.Millisecond},
		{name: "bad environment", env: "soon", wantErr: `TRELLIS_DRAIN_PERIOD="soon"`},
		{name: "negative flag", args: []string{"--drain-period", "-1s"}, wantErr: "--drain-period -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newProxyCmd()
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			flag, err := cmd.Flags().GetDuration("drain-period")
			if err != nil {
				t.Fatal(err)
			}
			b := &bootstrap.Bootstrap{DrainPeriod: bootstrap.Duration(tt.bootstrap)}
			getenv := func(k string) string {
				if k == drainPeriodEnv {
					return tt.env
				}
				return ""
			}
			err = applyDrainPeriod(cmd, flag, getenv, b)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b.DrainPeriod.Std(); got != tt.want {
				t.Errorf("drain period %s, want %s", got, tt.want)
			}
		})
	}
}

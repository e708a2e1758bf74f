package cli

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestRateLimitAddrChecked(t *testing.T) {
	for _, tc := range []struct {
		addr, wantErr string
	}{
		{addr: ""},
		{addr: "127.0.0.1:8081"},
		{addr: "ratelimit.trellis-system:8081"},
		{addr: "127.0.0.10", wantErr: "--ratelimit-addr: address 127.0.0.10: missing port in address"},
		{addr: "127.0.0.1:0", wantErr: `--ratelimit-addr "127.0.0.1:0": port must be 1..65535`},
		{addr: "127.0.0.1:http", wantErr: "port must be 1..65535"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			fs := pflag.NewFlagSet("control", pflag.ContinueOnError)
			r := addRateLimitFlags(fs)
			if err := fs.Parse([]string{"--ratelimit-addr=" + tc.addr}); err != nil {
				t.Fatal(err)
			}
			_, err := r.config()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/bootstrap"
)

func TestParseGRPCPort(t *testing.T) {
	tests := []struct {
		name, in string
		want     bootstrap.Port
		wantErr  bool
	}{
		{name: "port and listen port", in: "9090:18090",
			want: bootstrap.Port{Port: 9090, Protocol: "GRPC", Target: "127.0.0.1:18090", Inbound: "127.0.0.1:18090"}},
		{name: "named", in: "grpc:9090:18090",
			want: bootstrap.Port{Name: "grpc", Port: 9090, Protocol: "GRPC", Target: "127.0.0.1:18090", Inbound: "127.0.0.1:18090"}},
		{name: "listen host:port", in: "9090:10.0.0.1:18090",
			want: bootstrap.Port{Port: 9090, Protocol: "GRPC", Target: "10.0.0.1:18090", Inbound: "10.0.0.1:18090"}},
		{name: "named with host", in: "grpc:9090:10.0.0.1:18090",
			want: bootstrap.Port{Name: "grpc", Port: 9090, Protocol: "GRPC", Target: "10.0.0.1:18090", Inbound: "10.0.0.1:18090"}},
		{name: "no listen", in: "9090", wantErr: true},
		{name: "bad port", in: "grpc:http:18090", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGRPCPort(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseGRPCPort(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); !tc.wantErr && diff != "" {
				t.Errorf("parseGRPCPort(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

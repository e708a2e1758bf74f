package cli

import "testing"

func TestProxyMemoryLimit(t *testing.T) {
	tests := []struct {
		name       string
		mib        int
		gomemlimit string
		want       int64
	}{
		{name: "default", mib: defaultProxyMemoryLimitMiB, want: defaultProxyMemoryLimitMiB << 20},
		{name: "flag", mib: 64, want: 64 << 20},
		{name: "disabled", mib: 0, want: 0},
		{name: "environment wins", mib: 64, gomemlimit: "100MiB", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tt.gomemlimit
				}
				return ""
			}
			if got := proxyMemoryLimit(tt.mib, getenv); got != tt.want {
				t.Errorf("proxyMemoryLimit(%d, GOMEMLIMIT=%q) = %d, want %d", tt.mib, tt.gomemlimit, got, tt.want)
			}
		})
	}
}

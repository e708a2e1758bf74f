package reqinfo

import "testing"

func TestFlagsString(t *testing.T) {
	tests := []struct {
		name  string
		flags []Flag
		want  string
	}{
		{name: "none", want: "-"},
		{name: "one", flags: []Flag{UpstreamOverflow}, want: "UO"},
		{name: "several in order", flags: []Flag{UpstreamRetryLimitExceeded, UpstreamConnectFailure, DelayInjected}, want: "UF,URX,DI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fs Flags
			for _, f := range tt.flags {
				fs.Set(f)
			}
			if got := fs.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
	for i, f := range All() {
		if f.Index() != i {
			t.Errorf("%s.Index() = %d, want %d", f, f.Index(), i)
		}
	}
}

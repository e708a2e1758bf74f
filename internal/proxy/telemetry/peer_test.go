package telemetry

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

func TestPeerHeader(t *testing.T) {
	tests := []struct {
		name   string
		value  string
		want   reqinfo.Peer
		wantOK bool
	}{
		{name: "all", value: "reviews-v2,default,reviews,v2", want: reqinfo.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2"}, wantOK: true},
		{name: "no app", value: "job,batch,,", want: reqinfo.Peer{Workload: "job", Namespace: "batch"}, wantOK: true},
		{name: "escaped", value: "a%2Cb,ns,x+y,v", want: reqinfo.Peer{Workload: "a,b", Namespace: "ns", App: "x y", Version: "v"}, wantOK: true},
		{name: "more fields later", value: "w,ns,a,v,future", want: reqinfo.Peer{Workload: "w", Namespace: "ns", App: "a", Version: "v"}, wantOK: true},
		{name: "too few", value: "w,ns"},
		{name: "bad escape", value: "w%zz,ns,a,v"},
		{name: "empty", value: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DecodePeer(tt.value)
			if ok != tt.wantOK {
				t.Fatalf("DecodePeer(%q) ok = %v, want %v", tt.value, ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if ok && tt.name != "more fields later" {
				if back, _ := DecodePeer(EncodePeer(got)); back != got {
					t.Errorf("round trip of %+v gave %+v", got, back)
				}
			}
		})
	}
}

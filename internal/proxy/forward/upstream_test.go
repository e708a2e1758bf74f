package forward

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMoveHeaders(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   http.Header
		dst      http.Header
		want     http.Header
		wantLeft int // keys left in the response for the reverse proxy
	}{
		{name: "moved", status: 200, header: http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}, dst: http.Header{},
			want: http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}},
		{name: "the sidecar's values first", status: 200, header: http.Header{"X-Ratelimit-Limit": {"up"}}, dst: http.Header{"X-Ratelimit-Limit": {"10"}},
			want: http.Header{"X-Ratelimit-Limit": {"10", "up"}}},
		{name: "upgrade kept", status: 101, header: http.Header{"Upgrade": {"websocket"}}, dst: http.Header{}, want: http.Header{}, wantLeft: 1},
		{name: "event stream kept", status: 200, header: http.Header{"Content-Type": {"text/event-stream"}}, dst: http.Header{}, want: http.Header{}, wantLeft: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: tt.header}
			moveHeaders(tt.dst, resp)
			if diff := cmp.Diff(tt.want, tt.dst); diff != "" {
				t.Errorf("client's headers (-want +got):\n%s", diff)
			}
			if len(resp.Header) != tt.wantLeft {
				t.Errorf("%d keys left in the response, want %d", len(resp.Header), tt.wantLeft)
			}
		})
	}
}

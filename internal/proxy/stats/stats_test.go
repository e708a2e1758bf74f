package stats

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteText(t *testing.T) {
	tests := []struct {
		name   string
		record func(s *Stats)
		want   []string
	}{
		{name: "nothing", record: func(*Stats) {}, want: nil},
		{
			name: "http classes",
			record: func(s *Stats) {
				l := s.Listener("outbound")
				for _, code := range []int{200, 204, 404, 503, 0, 101} {
					l.Response(code)
				}
				s.Cluster("c").Response(200)
			},
			want: []string{
				"cluster.c.rq_2xx 1",
				"listener.outbound.rq_1xx 1",
				"listener.outbound.rq_2xx 2",
				"listener.outbound.rq_4xx 1",
				"listener.outbound.rq_5xx 1",
				"listener.outbound.rq_no_response 1",
			},
		},
		{
			name: "tcp",
			record: func(s *Stats) {
				c := s.Listener("upstream")
				c.TCPTotal.Add(2)
				c.TCPActive.Add(1)
			},
			want: []string{"listener.upstream.tcp_connections_active 1", "listener.upstream.tcp_connections_total 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stats{}
			tt.record(s)
			var b strings.Builder
			if err := s.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			var got []string
			if out := strings.TrimSpace(b.String()); out != "" {
				got = strings.Split(out, "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("WriteText (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkResponse(b *testing.B) {
	s := &Stats{}
	s.Listener("outbound")
	b.ReportAllocs()
	for b.Loop() {
		s.Listener("outbound").Response(200)
	}
}

package accesslog

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLines(t *testing.T) {
	self := reqinfo.Peer{Workload: "productpage-v1", Namespace: "default", Principal: "spiffe://cluster.local/ns/default/sa/pp"}
	reviews := &reqinfo.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews"}
	start := time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	var buf syncBuffer
	l := New(Config{Writer: &buf, Self: self})
	l.RecordHTTP(&reqinfo.Info{Start: start, Duration: 1500 * time.Microsecond, Code: 503,
		Flags: reqinfo.Flags(reqinfo.UpstreamConnectFailure), Cluster: "outbound|9080||reviews.default.svc.cluster.local",
		Host: "127.0.0.1:9080", BytesReceived: 3, BytesSent: 19,
		Telemetry: reqinfo.Telemetry{Method: "POST", Authority: "reviews:9080", Path: "/r", Proto: "HTTP/1.1", Peer: reviews,
			TraceID: [16]byte{0xab, 1}, GRPCStatus: -1}})
	l.RecordHTTP(&reqinfo.Info{Start: start, Code: 200, Telemetry: reqinfo.Telemetry{Inbound: true, Method: "GET",
		Authority: "productpage", Path: "/", Proto: "HTTP/2.0", GRPC: true, GRPCStatus: 0}})
	l.RecordTCP(&reqinfo.TCPInfo{Start: start, Duration: time.Second, Cluster: "outbound|9000||db.default.svc.cluster.local",
		Host: "127.0.0.1:9000", BytesReceived: 10, BytesSent: 20})
	l.Close()

	zero := 0
	want := []Line{
		{Time: "2025-01-02T03:04:05.6Z", TraceID: "ab010000000000000000000000000000", Method: "POST", Authority: "reviews:9080",
			Path: "/r", Protocol: "HTTP/1.1", ResponseCode: 503, ResponseFlags: "UF", DurationMS: 1.5, BytesSent: 19, BytesReceived: 3,
			UpstreamCluster: "outbound|9080||reviews.default.svc.cluster.local", UpstreamHost: "127.0.0.1:9080",
			Source:      Party{Workload: "productpage-v1", Namespace: "default", Principal: self.Principal},
			Destination: Party{Workload: "reviews-v2", Namespace: "default"}, Reporter: "source"},
		{Time: "2025-01-02T03:04:05.6Z", Method: "GET", Authority: "productpage", Path: "/", Protocol: "HTTP/2.0",
			ResponseCode: 200, GRPCStatus: &zero, ResponseFlags: "-",
			Destination: Party{Workload: "productpage-v1", Namespace: "default", Principal: self.Principal}, Reporter: "destination"},
		{Time: "2025-01-02T03:04:05.6Z", Protocol: "TCP", ResponseFlags: "-", DurationMS: 1000, BytesSent: 20, BytesReceived: 10,
			UpstreamCluster: "outbound|9000||db.default.svc.cluster.local", UpstreamHost: "127.0.0.1:9000",
			Source: Party{Workload: "productpage-v1", Namespace: "default", Principal: self.Principal}, Reporter: "source"},
	}
	var got []Line
	dec := json.NewDecoder(strings.NewReader(buf.String()))
	dec.DisallowUnknownFields()
	for {
		var ln Line
		if err := dec.Decode(&ln); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", len(got)+1, err, buf.String())
		}
		got = append(got, ln)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	// Every field is present in every line, even when empty.
	for i, raw := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var fields map[string]any
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"time", "trace_id", "method", "authority", "path", "protocol", "response_code", "response_flags",
			"duration_ms", "bytes_sent", "bytes_received", "upstream_cluster", "upstream_host", "source", "destination", "reporter"} {
			if _, ok := fields[f]; !ok {
				t.Errorf("line %d has no %q: %s", i+1, f, raw)
			}
		}
	}
}

// blockingWriter blocks every write until released.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

func TestDropsWhenFull(t *testing.T) {
	w := blockingWriter{release: make(chan struct{})}
	l := New(Config{Writer: w, Buffer: 2})
	for range 10 {
		l.RecordHTTP(&reqinfo.Info{Telemetry: reqinfo.Telemetry{GRPCStatus: -1}})
	}
	// The writer holds at most one entry and the queue two: at least 7 were dropped.
	if d := l.Dropped(); d < 7 {
		t.Errorf("Dropped = %d, want at least 7", d)
	}
	close(w.release)
	l.Close()
}

func BenchmarkRecordHTTP(b *testing.B) {
	l := New(Config{Writer: io.Discard})
	defer l.Close()
	info := &reqinfo.Info{Code: 200, Cluster: "outbound|80||echo.default.svc.cluster.local",
		Telemetry: reqinfo.Telemetry{Method: "GET", Authority: "echo", Path: "/", GRPCStatus: -1}}
	b.ReportAllocs()
	for b.Loop() {
		l.RecordHTTP(info)
	}
}

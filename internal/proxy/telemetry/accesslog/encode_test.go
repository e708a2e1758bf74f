package accesslog

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// jsonLine is the line encoding/json writes for e: what appendLine must write.
func jsonLine(t testing.TB, self *reqinfo.Peer, e *entry) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(render(self, *e)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkLine asserts that appendLine writes encoding/json's bytes for e, and that
// they decode to the strings of e (invalid UTF-8 read back as U+FFFD).
func checkLine(t *testing.T, self *reqinfo.Peer, e *entry) {
	t.Helper()
	got := appendLine([]byte("prefix"), self, e)
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("appendLine dropped what was in the buffer: %q", got)
	}
	got = got[len("prefix"):]
	if want := jsonLine(t, self, e); !bytes.Equal(got, want) {
		t.Fatalf("appendLine wrote\n%s\nencoding/json writes\n%s", got, want)
	}
	var ln Line
	dec := json.NewDecoder(bytes.NewReader(got))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ln); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, got)
	}
	for _, f := range []struct{ name, got, want string }{
		{"method", ln.Method, e.method}, {"authority", ln.Authority, e.authority}, {"path", ln.Path, e.path},
		{"upstream_host", ln.UpstreamHost, e.host}, {"upstream_cluster", ln.UpstreamCluster, e.cluster},
	} {
		if want := replaceInvalid(f.want); f.got != want {
			t.Errorf("%s decodes to %q, want %q", f.name, f.got, want)
		}
	}
}

// replaceInvalid is s with each byte that is not part of valid UTF-8 replaced by
// U+FFFD, as a JSON decoder reads it back.
func replaceInvalid(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				b.WriteRune(utf8.RuneError)
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestAppendLineIsEncodingJSON(t *testing.T) {
	self := &reqinfo.Peer{Workload: "productpage-v1", Namespace: "default", Principal: "spiffe://cluster.local/ns/default/sa/pp"}
	peer := &reqinfo.Peer{Workload: "reviews-v2", Namespace: "default", Principal: "spiffe://cluster.local/ns/default/sa/reviews"}
	start := time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("x", 3600))
	var all strings.Builder
	for c := range 0x80 {
		all.WriteByte(byte(c))
	}
	strs := []string{
		"", "/", "/a?b=c&d=<e>", `quote " backslash \ slash /`, all.String(),
		"\x00\x01\x1f\x7f", "\b\f\n\r\t", "é ü 日本 🎉", "\u2028 and \u2029", "\xff", "a\xc3", "\xc3\x28",
		"\xe2\x82", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 beyond U+10FFFF", "\xef\xbf\xbd real U+FFFD",
		"<script>&amp;</script>", strings.Repeat("long/", 400),
	}
	for i, s := range strs {
		for _, inbound := range []bool{false, true} {
			e := entry{inbound: inbound, start: start, duration: time.Duration(i) * 1234567, method: s, authority: s + "x",
				path: s, proto: "HTTP/1.1", code: 200 + i, grpcStatus: i%3 - 1, flags: reqinfo.Flags(i * 37),
				cluster: s, host: s, peer: peer, principal: s, sent: int64(i) << 40, received: -int64(i), audit: i%2 == 0}
			if i%4 == 0 {
				e.peer, e.traceID = nil, [16]byte{byte(i), 0xff}
			}
			checkLine(t, self, &e)
		}
	}
	// Durations at every scale, and the zero time.
	for _, d := range []time.Duration{0, time.Microsecond, 999 * time.Nanosecond, 1500 * time.Microsecond, time.Hour,
		-time.Second, 1<<63 - 1} {
		checkLine(t, self, &entry{duration: d, grpcStatus: -1, proto: "TCP", tcp: true})
	}
	for _, f := range []float64{0, 1e-7, 1.5e-9, 1e21, 123456789e20, -1e-7, 0.001, 1e20} {
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(f)
		if got := string(appendFloat(nil, f)) + "\n"; got != want.String() {
			t.Errorf("appendFloat(%g) = %q, encoding/json writes %q", f, got, want.String())
		}
	}
}

func FuzzAppendLine(f *testing.F) {
	f.Add("GET", "reviews:9080", "/a\"b\\c\n\u2028", "\xff\xfe", int64(1500), uint32(3))
	f.Add("", "", "", "", int64(0), uint32(0))
	self := &reqinfo.Peer{Workload: "w", Namespace: "ns", Principal: "spiffe://td/ns/ns/sa/w"}
	f.Fuzz(func(t *testing.T, method, authority, path, host string, durationUS int64, flags uint32) {
		e := entry{start: time.Unix(durationUS, durationUS), duration: time.Duration(durationUS) * time.Microsecond,
			method: method, authority: authority, path: path, host: host, cluster: path + host, principal: authority,
			flags: reqinfo.Flags(flags), grpcStatus: int(flags%5) - 1, inbound: flags%2 == 0, code: int(flags % 600)}
		checkLine(t, self, &e)
	})
}

func TestLinesWrittenWithoutClose(t *testing.T) {
	var buf syncBuffer
	l := New(Config{Writer: &buf, FlushInterval: 10 * time.Millisecond})
	defer l.Close()
	for round := 1; round <= 3; round++ {
		l.RecordHTTP(&reqinfo.Info{Code: 200, Telemetry: reqinfo.Telemetry{Path: "/", GRPCStatus: -1}})
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(buf.String(), "\n") < round {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the line was not written within 5 s of being recorded: %q", round, buf.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestCloseWritesEveryQueuedLine(t *testing.T) {
	var buf syncBuffer
	// A long interval: only Close (or half the queue filling) writes the lines.
	l := New(Config{Writer: &buf, Buffer: 8192, FlushInterval: time.Hour})
	const n = 5000
	for range n {
		l.RecordHTTP(&reqinfo.Info{Code: 200, Telemetry: reqinfo.Telemetry{Path: "/", GRPCStatus: -1}})
	}
	l.Close()
	if got := strings.Count(buf.String(), "\n"); got+int(l.Dropped()) != n || l.Dropped() != 0 {
		t.Errorf("%d lines written and %d dropped of %d recorded", got, l.Dropped(), n)
	}
}

// failingWriter fails its first writes, then succeeds.
type failingWriter struct {
	fails atomic.Int32
	buf   syncBuffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fails.Add(-1) >= 0 {
		return 0, io.ErrShortWrite
	}
	return w.buf.Write(p)
}

func TestWriteErrorIsNotForever(t *testing.T) {
	w := &failingWriter{}
	w.fails.Store(1)
	l := New(Config{Writer: w, FlushInterval: time.Millisecond})
	l.RecordHTTP(&reqinfo.Info{Telemetry: reqinfo.Telemetry{Path: "/lost", GRPCStatus: -1}})
	deadline := time.Now().Add(5 * time.Second)
	for w.fails.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	l.RecordHTTP(&reqinfo.Info{Telemetry: reqinfo.Telemetry{Path: "/kept", GRPCStatus: -1}})
	l.Close()
	if !strings.Contains(w.buf.String(), `"path":"/kept"`) {
		t.Errorf("after one failed write the next line was not written: %q", w.buf.String())
	}
}

var benchEntry = entry{start: time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.UTC), duration: 1234 * time.Microsecond,
	traceID: [16]byte{0xab, 1}, method: "POST", authority: "echo:8080", path: "/echo?size=1024", proto: "HTTP/1.1",
	code: 200, grpcStatus: -1, cluster: "outbound|8080||echo.default.svc.cluster.local", host: "127.0.0.1:18080",
	peer: &reqinfo.Peer{Workload: "echo-v1", Namespace: "default"}, sent: 1024, received: 1024}

// BenchmarkEncode is the cost of one line: "json" as the writer encoded it before
// (render, then encoding/json), "append" as it does now.
func BenchmarkEncode(b *testing.B) {
	self := &reqinfo.Peer{Workload: "client", Namespace: "default", Principal: "spiffe://cluster.local/ns/default/sa/client"}
	b.Run("json", func(b *testing.B) {
		enc := json.NewEncoder(io.Discard)
		enc.SetEscapeHTML(false)
		b.ReportAllocs()
		for b.Loop() {
			enc.Encode(render(self, benchEntry))
		}
	})
	b.Run("append", func(b *testing.B) {
		var line []byte
		b.ReportAllocs()
		for b.Loop() {
			line = appendLine(line[:0], self, &benchEntry)
		}
	})
}

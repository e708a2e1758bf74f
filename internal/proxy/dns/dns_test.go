package dns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// upstream is a resolver on loopback (UDP and TCP) that knows one name and answers NXDOMAIN
// for the others, as the cluster DNS would.
func upstream(t *testing.T) string {
	t.Helper()
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == "db.example.org." && q.Qtype == mdns.TypeA {
			m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 53)}}
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr, cfg.Logger = "127.0.0.1:0", slog.New(slog.DiscardHandler)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// ask sends one query over network and returns the answer's rcode and records.
func ask(t *testing.T, network, addr, name string, qtype uint16) (int, []string, bool) {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, name, err)
	}
	var rrs []string
	for _, rr := range resp.Answer {
		rrs = append(rrs, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return resp.Rcode, rrs, resp.Authoritative
}

func TestServer(t *testing.T) {
	up := upstream(t)
	s := start(t, Config{Upstreams: []string{up}})
	s.SetTable(map[string][]netip.Addr{
		"echo.default.svc.cluster.local": {netip.MustParseAddr("10.96.0.10")},
		"echo":                           {netip.MustParseAddr("10.96.0.10")},
		"dual.default":                   {netip.MustParseAddr("10.96.0.11"), netip.MustParseAddr("fd00::11")},
	})
	tests := []struct {
		name     string
		qtype    uint16
		rcode    int
		answers  []string
		authorit bool
	}{
		{name: "echo.default.svc.cluster.local.", qtype: mdns.TypeA, answers: []string{"echo.default.svc.cluster.local. 30 IN A 10.96.0.10"}, authorit: true},
		{name: "ECHO.", qtype: mdns.TypeA, answers: []string{"ECHO. 30 IN A 10.96.0.10"}, authorit: true},
		// A host of the table with no address of the type: no records, no error.
		{name: "echo.", qtype: mdns.TypeAAAA, authorit: true},
		{name: "echo.", qtype: mdns.TypeMX, authorit: true},
		{name: "dual.default.", qtype: mdns.TypeAAAA, answers: []string{"dual.default. 30 IN AAAA fd00::11"}, authorit: true},
		// Other names: forwarded to the upstream.
		{name: "db.example.org.", qtype: mdns.TypeA, answers: []string{"db.example.org. 60 IN A 192.0.2.53"}},
		{name: "echo.other.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name+"/"+mdns.TypeToString[tt.qtype], func(t *testing.T) {
				rcode, answers, auth := ask(t, network, s.Addr(), tt.name, tt.qtype)
				if rcode != tt.rcode || !slices.Equal(answers, tt.answers) || auth != tt.authorit {
					t.Errorf("got %s %q authoritative=%v, want %s %q authoritative=%v",
						mdns.RcodeToString[rcode], answers, auth, mdns.RcodeToString[tt.rcode], tt.answers, tt.authorit)
				}
			})
		}
	}
	if answered, forwarded := s.Counts(); answered != 10 || forwarded != 4 {
		t.Errorf("counts: answered %d, forwarded %d; want 10 and 4", answered, forwarded)
	}

	// A new table takes effect at once; a host that left it is forwarded.
	s.SetTable(map[string][]netip.Addr{"echo": {netip.MustParseAddr("10.96.0.20")}})
	if _, answers, _ := ask(t, "udp", s.Addr(), "echo.", mdns.TypeA); !slices.Equal(answers, []string{"echo. 30 IN A 10.96.0.20"}) {
		t.Errorf("after SetTable: %q", answers)
	}
	if rcode, answers, auth := ask(t, "udp", s.Addr(), "echo.default.svc.cluster.local.", mdns.TypeA); rcode != mdns.RcodeNameError || len(answers) != 0 || auth {
		t.Errorf("after SetTable, a removed host: %s %q (want NXDOMAIN from the upstream)", mdns.RcodeToString[rcode], answers)
	}
}

func TestServerLargeAnswer(t *testing.T) {
	s := start(t, Config{Upstreams: []string{}})
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 96, 1, byte(i)}))
	}
	s.SetTable(map[string][]netip.Addr{"many.default.svc.cluster.local": many})
	m := new(mdns.Msg)
	m.SetQuestion("many.default.svc.cluster.local.", mdns.TypeA)
	udp, _, err := (&mdns.Client{Net: "udp"}).Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !udp.Truncated || len(udp.Answer) >= 100 {
		t.Errorf("over UDP: truncated=%v with %d answers, want truncated to 512 bytes", udp.Truncated, len(udp.Answer))
	}
	tcp, _, err := (&mdns.Client{Net: "tcp"}).Exchange(m, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("over TCP: truncated=%v with %d answers, want all 100", tcp.Truncated, len(tcp.Answer))
	}
}

func TestServerUpstreams(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("search default.svc.cluster.local\nnameserver 10.0.0.10\nnameserver 127.0.0.1\noptions ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Addr: "127.0.0.1:0", ResolvConf: conf, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.udp.PacketConn.Close()
	defer s.tcp.Listener.Close()
	if want := []string{"10.0.0.10:53", "127.0.0.1:53"}; !slices.Equal(s.Upstreams(), want) {
		t.Errorf("upstreams = %q, want %q", s.Upstreams(), want)
	}

	// No upstream answers: SERVFAIL, not a hang.
	dead := start(t, Config{Upstreams: []string{"127.0.0.1:1"}, Timeout: 200 * time.Millisecond})
	if rcode, _, _ := ask(t, "udp", dead.Addr(), "db.example.org.", mdns.TypeA); rcode != mdns.RcodeServerFailure {
		t.Errorf("dead upstream: %s, want SERVFAIL", mdns.RcodeToString[rcode])
	}
}

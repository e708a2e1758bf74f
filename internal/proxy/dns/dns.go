package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// TTL is the time to live of the answers the server makes itself, in seconds: short,
// since a Service's address can change.
const TTL = 30

// DefaultTimeout bounds one forwarded query to one upstream resolver.
const DefaultTimeout = 2 * time.Second

// Config configures a Server.
type Config struct {
	// Addr is where the server listens, UDP and TCP (host:port; port 0 picks one).
	Addr string
	// Upstreams are the resolvers (host:port) other queries are forwarded to; nil:
	// those of ResolvConf.
	Upstreams []string
	// ResolvConf is the resolver configuration read when Upstreams is nil; default
	// /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds a forwarded query to one upstream; default DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Server answers DNS for the mesh's hosts and forwards the rest.
type Server struct {
	cfg       Config
	upstreams []string
	table     atomic.Pointer[map[string][]netip.Addr]
	udp, tcp  *mdns.Server
	answered  atomic.Uint64
	forwarded atomic.Uint64
}

// New binds cfg.Addr (UDP and TCP, the same port) and reads the upstream resolvers.
// Serve serves them.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		return nil, errors.New("dns: no logger")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	s := &Server{cfg: cfg, upstreams: cfg.Upstreams}
	if s.upstreams == nil {
		path := cmp.Or(cfg.ResolvConf, "/etc/resolv.conf")
		rc, err := mdns.ClientConfigFromFile(path)
		if err != nil {
			// No resolv.conf: the mesh's names still resolve; others get SERVFAIL.
			cfg.Logger.Warn("dns: no upstream resolvers; only the mesh's hosts resolve", "file", path, "error", err)
		} else {
			for _, h := range rc.Servers {
				s.upstreams = append(s.upstreams, net.JoinHostPort(h, rc.Port))
			}
		}
	}
	pc, ln, err := listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	own := pc.LocalAddr().String()
	kept := s.upstreams[:0:0]
	for _, u := range s.upstreams {
		if u != own { // never forward to ourselves
			kept = append(kept, u)
		}
	}
	s.upstreams = kept
	s.udp = &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(s.serveUDP)}
	s.tcp = &mdns.Server{Listener: ln, Handler: mdns.HandlerFunc(s.serveTCP)}
	empty := map[string][]netip.Addr{}
	s.table.Store(&empty)
	return s, nil
}

// listen binds addr over UDP, then TCP on the port UDP got; with port 0, a port free
// for UDP may be taken for TCP, so it tries a few.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt == 10 {
			return nil, nil, err
		}
	}
}

// Addr is the address the server listens on (UDP and TCP).
func (s *Server) Addr() string { return s.udp.PacketConn.LocalAddr().String() }

// Upstreams are the resolvers other queries go to.
func (s *Server) Upstreams() []string { return s.upstreams }

// Counts returns how many queries the server answered from its table and how many
// it forwarded.
func (s *Server) Counts() (answered, forwarded uint64) {
	return s.answered.Load(), s.forwarded.Load()
}

// SetTable replaces the host table: host (lower case, without the final dot) ->
// addresses. The map must not be changed afterwards.
func (s *Server) SetTable(hosts map[string][]netip.Addr) {
	if hosts == nil {
		hosts = map[string][]netip.Addr{}
	}
	s.table.Store(&hosts)
}

// Serve serves UDP and TCP until ctx ends, then shuts both down.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		_ = srv.ShutdownContext(shutdown)
	}
	return err
}

func (s *Server) serveUDP(w mdns.ResponseWriter, r *mdns.Msg) { s.serve(w, r, "udp") }
func (s *Server) serveTCP(w mdns.ResponseWriter, r *mdns.Msg) { s.serve(w, r, "tcp") }

func (s *Server) serve(w mdns.ResponseWriter, r *mdns.Msg, network string) {
	resp := s.answer(r)
	if resp != nil {
		s.answered.Add(1)
	} else {
		s.forwarded.Add(1)
		resp = s.forward(r, network)
	}
	if network == "udp" {
		// A client that announced a larger UDP size (EDNS0) may get more.
		size := mdns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Debug("dns: writing an answer", "error", err)
	}
}

// answer answers a query for a host of the table; nil when the query is not for one.
func (s *Server) answer(r *mdns.Msg) *mdns.Msg {
	if r.Opcode != mdns.OpcodeQuery || len(r.Question) != 1 {
		return nil
	}
	q := r.Question[0]
	if q.Qclass != mdns.ClassINET {
		return nil
	}
	addrs, ok := (*s.table.Load())[strings.TrimSuffix(strings.ToLower(q.Name), ".")]
	if !ok {
		return nil
	}
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	hdr := func(t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: q.Name, Rrtype: t, Class: mdns.ClassINET, Ttl: TTL}
	}
	for _, a := range addrs {
		switch {
		case a.Is4() && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY):
			m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: a.AsSlice()})
		case a.Is6() && (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY):
			m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr(mdns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	return m
}

// forward asks the upstream resolvers in turn, over the network the query came on;
// SERVFAIL when none answers.
func (s *Server) forward(r *mdns.Msg, network string) *mdns.Msg {
	c := &mdns.Client{Net: network, Timeout: s.cfg.Timeout}
	if network == "udp" {
		c.UDPSize = mdns.DefaultMsgSize // read whatever the upstream sends; Truncate trims
	}
	for _, u := range s.upstreams {
		resp, _, err := c.Exchange(r, u)
		if err == nil && resp != nil {
			return resp
		}
		s.cfg.Logger.Debug("dns: upstream did not answer", "upstream", u, "network", network, "error", err)
	}
	m := new(mdns.Msg)
	m.SetRcode(r, mdns.RcodeServerFailure)
	return m
}

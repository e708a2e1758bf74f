package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"trellis.dev/trellis/internal/proxy/h1server"
	"trellis.dev/trellis/internal/proxy/internal/rawtcp"
	"trellis.dev/trellis/internal/serverlimits"
)

// socket is one bound address, or a virtual one (ln nil) for a listener that is not
// bound (bind_to_port false), which serves only the connections a capture listener
// hands it (transparent.go). Once serving, its accept loop hands each connection to
// the HTTP servers or the TCP proxy according to the listener at its address in the
// current table, so a listener can change kind or name without a rebind.
type socket struct {
	addr    string
	ln      net.Listener
	serving bool

	// h1 serves HTTP/1.x connections; http serves HTTP/2 (h2c with prior
	// knowledge, h2 by ALPN), taking its connections from queue.
	h1    *h1server.Server
	http  *http.Server
	queue *connQueue
	// counter counts the socket's open connections against Limits.MaxConnections;
	// admitted maps an HTTP/2 connection handed to http to its release.
	counter  *serverlimits.ConnCounter
	admitted sync.Map
	ctx      context.Context // cancelled to end TCP connections
	cancel   context.CancelFunc
	done     sync.WaitGroup // the accept loop, the HTTP servers' connections, TCP connections

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open TCP proxy connections
}

// serve starts the socket's accept loop and HTTP servers. m.mu is held.
func (m *Manager) serve(s *socket) {
	s.serving = true
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.ln != nil {
		s.queue = newConnQueue(s.ln.Addr())
	} else {
		addr, _ := net.ResolveTCPAddr("tcp", s.addr) // numeric: no lookup
		s.queue = newConnQueue(addr)
	}
	s.conns = map[net.Conn]struct{}{}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // h2c with prior knowledge on the same port
	protocols.SetHTTP2(true)            // h2 over TLS chains, by ALPN
	lim := m.limits()
	s.counter = serverlimits.NewConnCounter(lim.MaxConnections)
	handler := m.cfg.HTTP.Handler(s.addr)
	s.h1 = h1server.New(h1server.Config{
		Handler:       lim.Handler(handler),
		HeaderTimeout: lim.HeaderTimeout,
		IdleTimeout:   lim.IdleTimeout,
		Logger:        m.cfg.Logger,
	})
	s.http = lim.Server(handler, m.cfg.Logger)
	s.http.Protocols = protocols
	s.http.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateClosed || state == http.StateHijacked {
			if release, ok := s.admitted.LoadAndDelete(c); ok {
				release.(func())()
			}
		}
	}
	if m.draining {
		s.http.SetKeepAlivesEnabled(false)
		s.h1.Drain()
	}
	s.done.Go(func() { _ = s.http.Serve(s.queue) })
	if s.ln != nil { // a virtual socket (bind_to_port false) only takes hand-offs
		s.done.Go(func() { m.accept(s) })
	}
}

func (m *Manager) accept(s *socket) {
	var delay time.Duration
	for {
		conn, err := s.ln.Accept()
		conn = rawtcp.Wrap(conn) // reads and writes without the runtime's syscall bookkeeping
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.cfg.Logger.Warn("accepting connection", "address", s.addr, "error", err)
			select {
			case <-time.After(delay):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		if !s.counter.Admit() {
			conn.Close()
			m.overflow(s)
			continue
		}
		m.dispatch(s, conn, sync.OnceFunc(s.counter.Release))
	}
}

func (s *socket) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *socket) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// drain stops accepting, lets HTTP requests and TCP connections finish until ctx
// ends, then closes the rest and waits for the socket's goroutines.
func (s *socket) drain(ctx context.Context) {
	if s.ln != nil {
		s.ln.Close()
	}
	s.queue.Close()
	var h1 sync.WaitGroup
	h1.Go(func() { _ = s.h1.Shutdown(ctx) })
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
	}
	h1.Wait()
	// TCP connections: wait for them to end, or close them at the deadline.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.openConns() > 0 {
		select {
		case <-ctx.Done():
			s.closeConns()
		case <-tick.C:
			continue
		}
		break
	}
	s.cancel()
	s.done.Wait()
}

func (s *socket) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *socket) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// serveHTTP serves an HTTP connection: HTTP/1.x on a goroutine of the socket with
// its HTTP/1.x server, through the framing guard; HTTP/2 (h2 by ALPN, or h2c with
// prior knowledge, which the HTTP/1.x server hands back) with its net/http server.
func (m *Manager) serveHTTP(s *socket, conn net.Conn, release func()) {
	if tc, ok := conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.serveH2(conn, release)
		return
	}
	conn = m.limits().Guard(conn)
	s.done.Go(func() {
		if h2c := s.h1.ServeConn(conn); h2c != nil {
			s.serveH2(h2c, release)
			return
		}
		release()
	})
}

// serveH2 hands an HTTP/2 connection to the socket's net/http server.
func (s *socket) serveH2(conn net.Conn, release func()) {
	s.admitted.Store(conn, release)
	if !s.queue.push(conn) {
		s.admitted.Delete(conn)
		conn.Close()
		release()
	}
}

// connQueue is a net.Listener fed by the socket's accept loop: the HTTP server
// accepts from it.
type connQueue struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// tables holds the table under test.
type tables struct{ t atomic.Pointer[runtime.Table] }

func (tb *tables) Current() *runtime.Table { return tb.t.Load() }

// handlers answers every HTTP request with "http <listener address>", or blocks
// until release is closed when the path is /slow.
type handlers struct{ release chan struct{} }

func (h handlers) Handler(addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-h.release
		}
		fmt.Fprintf(w, "http %s", addr)
	})
}

// tcpServer writes "tcp <listener name>" and closes.
type tcpServer struct{}

func (tcpServer) Serve(_ context.Context, c net.Conn, l *runtime.Listener) {
	defer c.Close()
	io.WriteString(c, "tcp "+l.Name)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func build(t *testing.T, ls ...*listenerv3.Listener) *runtime.Table {
	t.Helper()
	res := runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{},
		Routes:    map[string]*routev3.RouteConfiguration{"r": xdstest.RouteConfig("r")},
		Clusters:  map[string]*clusterv3.Cluster{"c": xdstest.StaticCluster("c", false)},
	}
	for _, l := range ls {
		res.Listeners[l.Name] = l
	}
	table, err := runtime.Build(res)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func newManager(t *testing.T) (*Manager, *tables, handlers) {
	tb := &tables{}
	h := handlers{release: make(chan struct{})}
	m := New(Config{Tables: tb, HTTP: h, TCP: tcpServer{}, Logger: slog.New(slog.DiscardHandler), DrainTimeout: 2 * time.Second})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	return m, tb, h
}

// apply does what the proxy does with a new table: prepare, publish, activate.
func apply(t *testing.T, m *Manager, tb *tables, table *runtime.Table) {
	t.Helper()
	want := map[string]string{}
	for _, l := range table.Listeners {
		want[l.Address] = l.Name
	}
	if err := m.Prepare(want); err != nil {
		t.Fatal(err)
	}
	tb.t.Store(table)
	m.Activate(table)
}

func dialRead(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func httpGet(addr, path string) (string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestPrepareBindFailure(t *testing.T) {
	m, _, _ := newManager(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freeAddr(t)
	err = m.Prepare(map[string]string{busy.Addr().String(): "inbound|80", free: "outbound"})
	var rerr *runtime.Error
	if !errors.As(err, &rerr) || rerr.Name != "inbound|80" || !strings.Contains(err.Error(), "binding "+busy.Addr().String()) {
		t.Fatalf("Prepare error = %v, want a runtime.Error naming listener inbound|80 and its address", err)
	}
	// What was bound in the failed attempt is released.
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Errorf("address %s still bound after a failed Prepare: %v", free, err)
	} else {
		ln.Close()
	}
}

func TestListenerLifecycle(t *testing.T) {
	m, tb, _ := newManager(t)
	a, b := freeAddr(t), freeAddr(t)

	apply(t, m, tb, build(t, xdstest.HTTPListener("web", a, "r"), xdstest.TCPListener("raw", b, "c")))
	if got, err := httpGet(a, "/"); err != nil || got != "http "+a {
		t.Fatalf("GET on %s = %q, %v", a, got, err)
	}
	if got, err := dialRead(b); err != nil || got != "tcp raw" {
		t.Fatalf("TCP on %s = %q, %v", b, got, err)
	}

	// The address of "web" becomes a TCP listener under another name, without a rebind;
	// "raw" is removed and its socket closed.
	apply(t, m, tb, build(t, xdstest.TCPListener("web-tcp", a, "c")))
	if got, err := dialRead(a); err != nil || got != "tcp web-tcp" {
		t.Errorf("TCP on %s after the change = %q, %v", a, got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("removed listener %s still accepts", b)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if got := m.Addresses(); len(got) != 1 || got[0] != a {
		t.Errorf("Addresses() = %v, want [%s]", got, a)
	}
}

// shutdownInBackground runs m.Shutdown (5s for what is in flight) and closes the
// returned channel when it returns.
func shutdownInBackground(m *Manager) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	}()
	return done
}

// waitRefused waits up to 5s for addr to refuse connections once Shutdown began.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after Shutdown began")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	m, tb, h := newManager(t)
	a := freeAddr(t)
	apply(t, m, tb, build(t, xdstest.HTTPListener("web", a, "r")))

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + a + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	shutdownDone := shutdownInBackground(m)
	// New connections are refused while the request in flight goes on.
	waitRefused(t, a)
	select {
	case <-shutdownDone:
		t.Fatal("Shutdown returned before the request in flight finished")
	default:
	}
	close(h.release)
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "http "+a {
		t.Errorf("in-flight response = %q, %v; want it completed", body, err)
	}
	<-shutdownDone
}

func TestDrainKeepsAcceptingAndEndsKeepAlives(t *testing.T) {
	m, tb, h := newManager(t)
	a := freeAddr(t)
	apply(t, m, tb, build(t, xdstest.HTTPListener("web", a, "r")))

	// A request in flight and an idle keep-alive connection when the drain begins.
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	slow, err := c.Get("http://" + a + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	idle, err := net.DialTimeout("tcp", a, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	first, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || first.Close {
		t.Fatalf("before the drain: %+v, %v; want a keep-alive response", first, err)
	}
	io.Copy(io.Discard, first.Body)

	m.Drain()

	// The idle keep-alive connection is closed.
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Errorf("idle keep-alive connection: read %d bytes after Drain, want it closed", n)
	}
	// New connections are still accepted and served, with Connection: close.
	for range 3 {
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}).Get("http://" + a + "/")
		if err != nil {
			t.Fatalf("new request while draining: %v; want it served", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// resp.Close: the response said Connection: close.
		if string(body) != "http "+a || !resp.Close {
			t.Errorf("while draining: %q, close %v; want the answer with Connection: close", body, resp.Close)
		}
	}

	// Shutdown then stops accepting and lets the request in flight finish.
	shutdownDone := shutdownInBackground(m)
	waitRefused(t, a)
	close(h.release)
	body, err := io.ReadAll(slow.Body)
	if err != nil || string(body) != "http "+a {
		t.Errorf("in-flight response = %q, %v; want it completed", body, err)
	}
	<-shutdownDone
}

func TestDrainSendsGOAWAYOnHTTP2(t *testing.T) {
	m, tb, _ := newManager(t)
	a := freeAddr(t)
	apply(t, m, tb, build(t, xdstest.HTTPListener("web", a, "r")))

	// An h2c client (prior knowledge) that counts the connections it opens.
	var dials atomic.Int32
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		Protocols: protocols,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	get := func() error {
		resp, err := c.Get("http://" + a + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && (resp.ProtoMajor != 2 || string(body) != "http "+a) {
			err = fmt.Errorf("%s %q", resp.Proto, body)
		}
		return err
	}
	for range 3 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections for 3 requests before the drain, want 1 (HTTP/2 multiplexing)", n)
	}

	m.Drain()
	// The connection gets GOAWAY once its stream is done: the client moves to a new
	// one, which is still accepted.
	deadline := time.Now().Add(5 * time.Second)
	for dials.Load() == 1 {
		if err := get(); err != nil {
			t.Fatalf("a request while draining: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the HTTP/2 connection is still used 5s into the drain; want a GOAWAY")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

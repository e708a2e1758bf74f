package listener

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// TestVirtualListenersAndHandoff checks that a bind_to_port false listener gets a
// socket that is never bound, and that a capture listener's connections go to the
// listener at their original destination, else at 0.0.0.0 and its port, else stay.
func TestVirtualListenersAndHandoff(t *testing.T) {
	m, tb, _ := newManager(t)
	capture := freeAddr(t)
	table := build(t,
		xdstest.CaptureListener("capture", capture, "c"),
		xdstest.Unbound(xdstest.TCPListener("10.96.0.10_9000", "10.96.0.10:9000", "c")),
		xdstest.Unbound(xdstest.TCPListener("0.0.0.0_7000", "0.0.0.0:7000", "c")),
	)
	if err := m.Prepare(runtime.ListenerAddresses(nil)); err != nil {
		t.Fatal(err)
	}
	tb.t.Store(table)
	m.Activate(table)
	m.mu.Lock()
	for _, addr := range []string{"10.96.0.10:9000", "0.0.0.0:7000"} {
		if s := m.sockets[addr]; s == nil || !s.serving || s.ln != nil {
			t.Errorf("socket at %s = %+v, want a serving virtual socket", addr, s)
		}
	}
	m.mu.Unlock()

	from := table.ListenerAt(capture)
	tests := []struct {
		name string
		dst  string
		want string // listener name; "" for none
	}{
		{name: "exact address", dst: "10.96.0.10:9000", want: "10.96.0.10_9000"},
		{name: "any address of the port", dst: "10.1.1.1:7000", want: "0.0.0.0_7000"},
		{name: "unknown", dst: "10.96.0.10:9001"},
		{name: "the capture listener itself", dst: capture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, l := m.handoff(table, netip.MustParseAddrPort(tt.dst), from)
			got := ""
			if l != nil {
				got = l.Name
				if s.addr != l.Address {
					t.Errorf("socket %s for listener at %s", s.addr, l.Address)
				}
			}
			if got != tt.want {
				t.Errorf("handoff(%s) = %q, want %q", tt.dst, got, tt.want)
			}
		})
	}

	// A connection handed to a virtual socket is served by its listener.
	m.mu.Lock()
	s := m.sockets["10.96.0.10:9000"]
	m.mu.Unlock()
	client, server := net.Pipe()
	defer client.Close()
	m.dispatchTo(s.ctx, s, server, table.ListenerAt("10.96.0.10:9000"), func() {})
	client.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(client)
	if string(got) != "tcp 10.96.0.10_9000" {
		t.Errorf("virtual listener answered %q, want %q", got, "tcp 10.96.0.10_9000")
	}

	// A connection to the capture listener that was not redirected has no original
	// destination: it is closed, not looped back.
	if got, err := dialRead(capture); err != nil || got != "" {
		t.Errorf("direct connection to the capture listener: %q, %v; want it closed", got, err)
	}
}

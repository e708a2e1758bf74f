// Package listener owns the sidecar's listening sockets.
//
// Sockets are keyed by address. When an LDS update is accepted, Prepare binds the new
// addresses (a failure is returned, and NACKed by the caller, naming the listener and
// address) but does not serve them: connections wait in the kernel's backlog. When a
// table is published, Activate starts serving its addresses and drains sockets whose
// address the table no longer has; an unchanged address keeps its socket, never
// rebound. Each serving socket runs an accept loop that looks up the listener at its
// address in the current table per connection, and hands the connection to the HTTP
// servers or to the TCP proxy, so a listener may change name or kind without a
// rebind. An HTTP connection is served on a goroutine of its own by the socket's
// h1server.Server (HTTP/1.x, without net/http's per-request background read), which
// hands a connection that starts with the HTTP/2 preface (h2c with prior knowledge)
// back to the socket's http.Server; a TLS connection that negotiated h2 goes to the
// http.Server directly.
//
// Filter chains (tls.go): a listener with one plaintext chain takes connections as they
// come. Otherwise a goroutine per connection (tracked like a TCP connection, so drains
// close it) peeks at the first two bytes without consuming them (the TLS inspector: a
// handshake record of version 3.x is "tls", anything else "raw_buffer"; at most
// InspectTimeout), picks the chain (runtime.Listener.Chain; none: the connection is
// closed, as STRICT wants for plaintext), completes the chain's TLS handshake with the
// tls.Config the sidecar attached to it, and only then hands the connection on.
//
// Protocol detection (detect.go): on a listener with the HTTP inspector the same
// goroutine reads on, still without consuming, until the bytes are an HTTP/1.x
// request line ("http/1.1"), the HTTP/2 preface ("h2c"), or cannot be (at most
// DetectTimeout; silence is TCP), and picks the chain by application protocol
// (runtime.Listener.ChainFor); over TLS the negotiated ALPN is the application
// protocol.
//
// Transparent proxying (transparent.go): a listener with bind_to_port false gets a
// virtual socket (no net.Listener, no accept loop) whose HTTP server and TCP
// connections serve only what a capture listener (use_original_dst) hands it. The
// capture listener reads each connection's original destination (SO_ORIGINAL_DST,
// origdst.go), closes it if it was not redirected, and hands it to the socket of the
// listener at that address, else at 0.0.0.0 and its port, else serves it with its own
// chains; the destination travels in the context (runtime.WithOriginalDst) to the
// ORIGINAL_DST clusters of the TCP proxy.
//
// Draining (the sidecar's drain period at shutdown): Drain turns HTTP keep-alives off
// on every socket while they keep accepting (h1server.Server.Drain: HTTP/1.1
// responses carry "Connection: close", idle connections close; HTTP/2 connections get
// GOAWAY once idle); Shutdown later stops accepting and lets what is in flight finish.
//
// Limits (limits.go, docs/limits.md): each socket's HTTP server takes its timeouts,
// header bounds and HTTP/2 settings from Config.Limits; every HTTP/1.x connection is
// read through serverlimits' framing guard, which refuses request smuggling and
// malformed heads before they are parsed (an h2 connection over TLS is handed to
// net/http as the *tls.Conn it needs); and each socket admits at most
// MaxConnections open connections: the accept loop closes one beyond at once
// (downstream_cx_overflow). An admission is released when its connection closes: by
// the HTTP/1.x connection's goroutine when h1server is done with it (closed, or
// hijacked and its handler returned), the http.Server's ConnState hook, the TCP
// proxy's goroutine, or where dispatch drops the connection.
//
// Concurrency: Manager.mu guards the socket map; each socket's goroutines (accept
// loop, HTTP/2 server, HTTP/1.x connections, TCP connections) are tracked by its
// WaitGroup, and drains of
// removed sockets by the Manager's. Shutdown stops accepting everywhere, lets requests
// and connections finish until its context ends, closes the rest and waits for all.
package listener

// Package listener owns the sidecar's listening sockets.
//
// Sockets are keyed by address. When an LDS update is accepted, Prepare binds the new
// addresses (a failure is returned, and NACKed by the caller, naming the listener and
// address) but does not serve them: connections wait in the kernel's backlog. When a
// table is published, Activate starts serving its addresses and drains sockets whose
// address the table no longer has; an unchanged address keeps its socket, never
// rebound. Each serving socket runs an accept loop that looks up the listener at its
// address in the current table per connection, and hands the connection to an
// http.Server (HTTP/1.1 and h2c with prior knowledge on the same port) or to the TCP
// proxy, so a listener may change name or kind without a rebind.
//
// Concurrency: Manager.mu guards the socket map; each socket's goroutines (accept
// loop, HTTP server, TCP connections) are tracked by its WaitGroup, and drains of
// removed sockets by the Manager's. Shutdown stops accepting everywhere, lets requests
// and connections finish until its context ends, closes the rest and waits for all.
package listener

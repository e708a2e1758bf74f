// Package serverlimits bounds what a client can make a server do: the limits and
// timeouts of every listener of the sidecar and the control plane (docs/limits.md).
//
// Limits is the one configuration: its fields have defaults close to Envoy's, and
// AddFlags binds them to the flags of `trellis proxy` and `trellis control`. It gives
// an http.Server its timeouts, header size and HTTP/2 settings (Server), a handler
// that enforces what net/http does not (Handler: header count, body size, refused
// heads), a listener that caps open connections (Listener, TLSListener; the
// sidecar's listener manager counts with a ConnCounter itself), and Guard, a strict
// HTTP/1.x framing check beneath net/http that refuses request smuggling and
// malformed heads before net/http parses them (http1.go).
//
// Data flow of a guarded connection: net/http reads from the Guard, which reads a
// whole head from the connection into its buffer, checks it, and releases it there,
// without a copy (or, in its place, a reject request that Handler answers with 400
// or 431 and "Connection: close"); bodies pass through as they arrive while the
// Guard follows their framing.
//
// Concurrency: a Guard is read by one goroutine at a time (net/http's connection
// goroutine, or its background read, never both); a ConnCounter is atomic.
package serverlimits

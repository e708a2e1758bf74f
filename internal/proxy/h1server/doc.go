// Package h1server serves the HTTP/1.x connections of the sidecar's traffic
// listeners: a loop per connection that reads a request head (http.ReadRequest on a
// bufio.Reader), calls the handler with its own http.ResponseWriter, writes the
// response and reads the next request.
//
// Why not net/http's server: for every request it starts a background read of the
// connection (to notice a client that goes away) and aborts it after the response,
// which costs a read that fails with EAGAIN, a deadline in the past and two goroutine
// wake-ups per request; on the sidecar that is a good part of its CPU per request.
// Here a request is watched that way only once it has run for watchDelay (watch.go),
// so a fast request pays a timer reset and stop.
//
// What it serves: HTTP/1.0 and HTTP/1.1 with keep-alive (HTTP/1.0 only with
// "Connection: keep-alive"), "Connection: close" either way, pipelined requests (one
// at a time), "Expect: 100-continue" (the 100 is sent when the handler first reads
// the body; an unread body then closes the connection), chunked request bodies and
// trailers (http.ReadRequest), 1xx informational responses, HEAD, 204 and 304
// without a body, Flush (streaming), Hijack (upgrades), read and write deadlines
// through http.ResponseController. A response's body is sent with the
// Content-Length the handler set; else, when the handler returns having written at
// most 4 KiB without flushing, with that length; else chunked (HTTP/1.1) or until
// the connection closes (HTTP/1.0). Announced trailers are sent after a chunked
// body. An unread request body is read and discarded after the handler, up to
// 256 KiB; a longer one closes the connection. A connection closed after an answer
// closes its sending side first and reads what the client still sends until the
// client closes too (at most 500 ms), so that a reset does not destroy the answer.
// A handler panic closes the connection at once (http.ErrAbortHandler silently, any
// other is logged).
//
// What it does not do: HTTP/2. ServeConn returns a connection that starts with the
// HTTP/2 preface to the caller, which hands it to net/http's server (and so does a
// TLS connection that negotiated h2). It does not validate heads beyond what
// http.ReadRequest and the Host rules need: the listeners put serverlimits' framing
// guard in front, and its reject requests are answered by serverlimits.Handler,
// which the caller wraps around the handler.
//
// Timeouts: HeaderTimeout bounds the first request's wait and each head's read from
// its first byte; IdleTimeout the wait for a next request. Body reads are bounded by
// the guard.
//
// Goroutines: ServeConn serves on its caller's goroutine, which owns the
// connection, its buffers and the response writer; a handler that hijacks the
// connection owns it from then on. The response's header map is the connection's,
// cleared and used again for each request (an allocation less per request): a
// handler must not use it once it has returned. A body reader on another goroutine (a transport
// still sending the body) is serialised with the server's drain of the body by the
// body's mutex, and its 100 Continue with the response head by the response's. The
// watch's goroutine (one per slow request) only peeks at the connection's reader
// while the serving goroutine runs the handler, and the serving goroutine stops it
// (a read deadline in the past) and waits for it before it reads or hands the
// connection on. Server.mu guards the set of connections, which Drain and Shutdown
// close when idle (Shutdown: all of them once its context ends).
package h1server

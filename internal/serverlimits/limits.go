package serverlimits

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Limits are the bounds a server puts on its clients. The zero value of a field
// means its default (Default); docs/limits.md lists them.
type Limits struct {
	// MaxHeaderBytes bounds a request's head: request line and header fields over
	// HTTP/1.x, the decoded header list over HTTP/2. Beyond it the answer is 431.
	MaxHeaderBytes int
	// MaxHeaders bounds the header fields of a request. Beyond it the answer is 431.
	MaxHeaders int
	// HeaderTimeout bounds the time from a connection's (or a keep-alive request's)
	// first byte to the end of the request head, TLS handshake included on guarded
	// TLS servers; a slow client's connection is closed (slowloris).
	HeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that has no request for this long.
	IdleTimeout time.Duration
	// MaxBodyBytes bounds a request body (413 when the declared length is over, the
	// body read fails when a streamed one is); zero or negative: no limit.
	MaxBodyBytes int64
	// MaxConnections bounds the open connections of one listener. A connection
	// beyond it is closed as soon as it is accepted; the open ones are served on.
	MaxConnections int
	// HandshakeTimeout bounds a TLS handshake.
	HandshakeTimeout time.Duration
	// H2MaxConcurrentStreams bounds the streams of one HTTP/2 connection.
	H2MaxConcurrentStreams int
	// H2StreamWindow and H2ConnectionWindow bound the data a client may send ahead
	// on one stream and on one connection (HTTP/2 flow control).
	H2StreamWindow     int
	H2ConnectionWindow int
}

// Defaults, close to Envoy's where Envoy has one (60 KiB and 100 headers).
const (
	DefaultMaxHeaderBytes         = 60 << 10
	DefaultMaxHeaders             = 100
	DefaultHeaderTimeout          = 10 * time.Second
	DefaultIdleTimeout            = 5 * time.Minute
	DefaultMaxConnections         = 10000
	DefaultHandshakeTimeout       = 10 * time.Second
	DefaultH2MaxConcurrentStreams = 100
	DefaultH2StreamWindow         = 1 << 20
	DefaultH2ConnectionWindow     = 1 << 20
	// DefaultMaxBodyBytes is the body limit of servers that read bodies whole
	// (admission webhooks, the dashboard's API); the sidecar streams bodies and
	// sets none.
	DefaultMaxBodyBytes = 4 << 20
)

// Default returns the default limits, with no body limit.
func Default() Limits {
	return Limits{
		MaxHeaderBytes:         DefaultMaxHeaderBytes,
		MaxHeaders:             DefaultMaxHeaders,
		HeaderTimeout:          DefaultHeaderTimeout,
		IdleTimeout:            DefaultIdleTimeout,
		MaxBodyBytes:           -1,
		MaxConnections:         DefaultMaxConnections,
		HandshakeTimeout:       DefaultHandshakeTimeout,
		H2MaxConcurrentStreams: DefaultH2MaxConcurrentStreams,
		H2StreamWindow:         DefaultH2StreamWindow,
		H2ConnectionWindow:     DefaultH2ConnectionWindow,
	}
}

// WithDefaults fills the zero fields with their defaults.
func (l Limits) WithDefaults() Limits {
	d := Default()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	set(&l.MaxHeaders, d.MaxHeaders)
	set(&l.MaxConnections, d.MaxConnections)
	set(&l.H2MaxConcurrentStreams, d.H2MaxConcurrentStreams)
	set(&l.H2StreamWindow, d.H2StreamWindow)
	set(&l.H2ConnectionWindow, d.H2ConnectionWindow)
	if l.HeaderTimeout == 0 {
		l.HeaderTimeout = d.HeaderTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = d.IdleTimeout
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = d.HandshakeTimeout
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	return l
}

// WithBodyLimit returns l with MaxBodyBytes n unless l sets one.
func (l Limits) WithBodyLimit(n int64) Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = n
	}
	return l
}

// Validate reports a limit out of range, naming its flag.
func (l Limits) Validate() error {
	l = l.WithDefaults()
	switch {
	case l.MaxHeaderBytes < 1<<10 || l.MaxHeaderBytes > 1<<20:
		return fmt.Errorf("--max-header-bytes %d: must be between 1024 and 1048576", l.MaxHeaderBytes)
	case l.MaxHeaders < 1:
		return fmt.Errorf("--max-headers %d: must be positive", l.MaxHeaders)
	case l.MaxConnections < 1:
		return fmt.Errorf("--max-connections %d: must be positive", l.MaxConnections)
	case l.HeaderTimeout < 0, l.IdleTimeout < 0, l.HandshakeTimeout < 0:
		return fmt.Errorf("--header-timeout, --idle-timeout and --tls-handshake-timeout must not be negative")
	case l.H2MaxConcurrentStreams < 1:
		return fmt.Errorf("--h2-max-concurrent-streams %d: must be positive", l.H2MaxConcurrentStreams)
	case l.H2StreamWindow < 1<<16 || l.H2StreamWindow >= 4<<20:
		return fmt.Errorf("--h2-stream-window %d: must be at least 65536 and under 4 MiB", l.H2StreamWindow)
	case l.H2ConnectionWindow < 1<<16 || l.H2ConnectionWindow >= 4<<20:
		return fmt.Errorf("--h2-connection-window %d: must be at least 65536 and under 4 MiB", l.H2ConnectionWindow)
	}
	return nil
}

// AddFlags binds the limits to flags of fs, with l's values as defaults: the one
// place `trellis proxy` and `trellis control` take them from.
func (l *Limits) AddFlags(fs *pflag.FlagSet) {
	*l = l.WithDefaults()
	fs.IntVar(&l.MaxHeaderBytes, "max-header-bytes", l.MaxHeaderBytes, "HTTP: largest request head (request line and headers; HTTP/2: header list) in bytes; beyond: 431")
	fs.IntVar(&l.MaxHeaders, "max-headers", l.MaxHeaders, "HTTP: most header fields in a request; beyond: 431")
	fs.DurationVar(&l.HeaderTimeout, "header-timeout", l.HeaderTimeout, "HTTP: time to read a request head; a slower connection is closed")
	fs.DurationVar(&l.IdleTimeout, "idle-timeout", l.IdleTimeout, "HTTP: a keep-alive connection with no request for this long is closed")
	fs.IntVar(&l.MaxConnections, "max-connections", l.MaxConnections, "most open connections per listener; a connection beyond is closed at once")
	fs.DurationVar(&l.HandshakeTimeout, "tls-handshake-timeout", l.HandshakeTimeout, "TLS: time a handshake may take")
	fs.IntVar(&l.H2MaxConcurrentStreams, "h2-max-concurrent-streams", l.H2MaxConcurrentStreams, "HTTP/2: most concurrent streams per connection")
	fs.IntVar(&l.H2StreamWindow, "h2-stream-window", l.H2StreamWindow, "HTTP/2: flow-control window of a stream (bytes a client may send ahead)")
	fs.IntVar(&l.H2ConnectionWindow, "h2-connection-window", l.H2ConnectionWindow, "HTTP/2: flow-control window of a connection")
}

// Server returns an http.Server with the limits (timeouts, header size, HTTP/2
// settings) that serves h behind Handler. The caller sets Protocols and ErrorLog and
// serves it on a Listener.
func (l Limits) Server(h http.Handler, log *slog.Logger) *http.Server {
	l = l.WithDefaults()
	srv := &http.Server{
		Handler:           l.Handler(h),
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          l.H2MaxConcurrentStreams,
			MaxDecoderHeaderTableSize:     4 << 10,
			MaxEncoderHeaderTableSize:     4 << 10,
			MaxReadFrameSize:              16 << 10,
			MaxReceiveBufferPerStream:     l.H2StreamWindow,
			MaxReceiveBufferPerConnection: l.H2ConnectionWindow,
			WriteByteTimeout:              l.IdleTimeout,
		},
		ConnContext: connContext,
	}
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return srv
}

type tlsStateKey struct{}

// connContext carries the TLS state of a guarded TLS connection to Handler, which
// net/http cannot see through the guard.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if g, ok := c.(*guardConn); ok {
		if st := g.TLSState(); st != nil && st.HandshakeComplete {
			return context.WithValue(ctx, tlsStateKey{}, st)
		}
	}
	return ctx
}

// Handler enforces the limits net/http does not: it answers the reject requests of
// Guard, refuses a request with more than MaxHeaders fields (431) or a declared body
// over MaxBodyBytes (413) and bounds the body it reads; it gives a request read
// through a guarded TLS connection its TLS state, as net/http would.
func (l Limits) Handler(h http.Handler) http.Handler {
	l = l.WithDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == RejectMethod {
			answerReject(w, r)
			return
		}
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = st
			}
		}
		n := 0
		for _, v := range r.Header {
			n += len(v)
		}
		if n > l.MaxHeaders {
			refuse(w, http.StatusRequestHeaderFieldsTooLarge, ReasonTooManyHeaders)
			return
		}
		if l.MaxBodyBytes > 0 {
			if r.ContentLength > l.MaxBodyBytes {
				refuse(w, http.StatusRequestEntityTooLarge, "body-too-large")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, l.MaxBodyBytes)
		}
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		x := &watched{body: watchedBody{ReadCloser: r.Body}, rw: watchedWriter{ResponseWriter: w}}
		r.Body = &x.body
		h.ServeHTTP(&x.rw, r)
		if err := x.body.err; err != nil && !x.rw.wrote {
			// The body broke (stalled, malformed, cut) and the handler gave up
			// without answering: say so rather than let net/http answer 200.
			status := http.StatusBadRequest
			if errors.Is(err, os.ErrDeadlineExceeded) {
				status = http.StatusRequestTimeout
			}
			refuse(w, status, "request body incomplete")
		}
	})
}

// watched is a request whose body errors and response are watched (one allocation).
type watched struct {
	body watchedBody
	rw   watchedWriter
}

// watchedBody remembers the first error other than io.EOF.
type watchedBody struct {
	io.ReadCloser
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// watchedWriter remembers whether anything was written.
type watchedWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *watchedWriter) WriteHeader(code int) {
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// ReadFrom lets io.Copy to the response use the server's copy (io.ReaderFrom, with
// its pooled buffer) rather than allocate a 32 KiB buffer per call.
func (w *watchedWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, r)
	}
	n, err := rf.ReadFrom(r)
	if n > 0 {
		w.wrote = true // net/http writes the head with the first byte
	}
	return n, err
}

// writerOnly hides every method of a writer but Write.
type writerOnly struct{ io.Writer }

// Flush flushes the response (http.Flusher).
func (w *watchedWriter) Flush() {
	w.wrote = true
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *watchedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// answerReject answers "TRELLIS-REJECT /<status>/<reason>".
func answerReject(w http.ResponseWriter, r *http.Request) {
	status, reason := http.StatusBadRequest, "bad-request"
	if rest, ok := strings.CutPrefix(r.URL.Path, "/"); ok {
		code, why, _ := strings.Cut(rest, "/")
		if n, err := strconv.Atoi(code); err == nil && n >= 400 && n < 500 {
			status = n
		}
		if why != "" {
			reason = why
		}
	}
	refuse(w, status, reason)
}

// refuse answers status with the reason and closes the connection after.
func refuse(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s: %s\n", status, http.StatusText(status), reason)
}

package listener

import (
	"bytes"
	"errors"
	"net"
	"os"
	"time"

	"trellis.dev/trellis/internal/proxy/runtime"
	"trellis.dev/trellis/internal/serverlimits"
)

// Protocol detection on plaintext connections (the HTTP inspector; docs/proxy.md,
// "Protocol detection").
const (
	// DetectTimeout bounds the wait for the bytes that tell HTTP from anything else.
	// A protocol where the server speaks first (MySQL, SMTP) sends nothing: after
	// DetectTimeout the connection is carried as TCP.
	DetectTimeout = 300 * time.Millisecond
	// maxRequestLine bounds the bytes read to find an HTTP/1.x request line; a longer
	// first line is carried as TCP.
	maxRequestLine = 8 << 10
)

// detectChain reads the first bytes of a plaintext connection without consuming them
// (c serves them again), tells HTTP/1.x and HTTP/2 from anything else, and returns
// the chain of that application protocol.
func (m *Manager) detectChain(c net.Conn, l *runtime.Listener, isTLS bool) (net.Conn, *runtime.FilterChain) {
	pc, ok := c.(*peekedConn)
	if !ok {
		pc = &peekedConn{Conn: c}
	}
	app, err := sniff(pc, DetectTimeout)
	if err != nil {
		m.cfg.Logger.Debug("detecting protocol", "listener", l.Name, "remote", c.RemoteAddr(), "error", err)
		return nil, nil
	}
	chain := l.ChainFor(isTLS, app)
	if chain == nil {
		m.cfg.Logger.Debug("no filter chain for connection; closing", "listener", l.Name, "remote", c.RemoteAddr(), "protocol", app)
	}
	return pc, chain
}

// sniff reads into pc.head until its bytes are an HTTP/1.x request line
// (runtime.AppHTTP11), the HTTP/2 preface (runtime.AppH2C), or cannot be either
// (""); a connection that stays silent for timeout, ends, or sends a first line
// longer than maxRequestLine is "" too. An error means the connection failed
// before sending anything.
func sniff(pc *peekedConn, timeout time.Duration) (string, error) {
	if err := pc.Conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	// A connection that cannot clear its deadline is already gone; its next read says so.
	defer func() { _ = pc.Conn.SetReadDeadline(time.Time{}) }()
	for {
		if app, done := classify(pc.head); done {
			return app, nil
		}
		if len(pc.head) >= maxRequestLine {
			return "", nil
		}
		if cap(pc.head)-len(pc.head) < 512 {
			pc.head = append(make([]byte, 0, max(2*cap(pc.head), 1024)), pc.head...)
		}
		n, err := pc.Conn.Read(pc.head[len(pc.head):min(cap(pc.head), maxRequestLine)])
		pc.head = pc.head[:len(pc.head)+n]
		if err != nil {
			if len(pc.head) == 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", err
			}
			app, _ := classify(pc.head)
			return app, nil // silent, ended or failed: what the bytes say so far
		}
	}
}

// classify reports what b, the first bytes of a connection, are: done with
// runtime.AppH2C for the HTTP/2 preface, runtime.AppHTTP11 for an HTTP/1.x request
// line (method SP target SP "HTTP/1." digit CRLF or LF), "" for bytes that cannot
// start either; not done while b may still become one.
func classify(b []byte) (app string, done bool) {
	if len(b) == 0 {
		return "", false
	}
	if n := min(len(b), len(serverlimits.H2Preface)); bytes.Equal(b[:n], serverlimits.H2Preface[:n]) {
		if n == len(serverlimits.H2Preface) {
			return runtime.AppH2C, true
		}
		return "", false
	}
	return classifyHTTP1(b)
}

// classifyHTTP1 matches an HTTP/1.x request line.
func classifyHTTP1(b []byte) (string, bool) {
	i := 0
	for i < len(b) && serverlimits.IsTokenChar(b[i]) {
		i++
	}
	switch {
	case i == len(b):
		return "", false
	case i == 0 || b[i] != ' ':
		return "", true
	}
	i++ // the space after the method
	start := i
	for i < len(b) && b[i] > ' ' && b[i] < 0x7f {
		i++
	}
	switch {
	case i == len(b):
		return "", false
	case i == start || b[i] != ' ':
		return "", true
	}
	i++
	const version = "HTTP/1."
	rest := b[i:]
	if n := min(len(rest), len(version)); string(rest[:n]) != version[:n] {
		return "", true
	} else if n < len(version) {
		return "", false
	}
	rest = rest[len(version):]
	switch {
	case len(rest) == 0:
		return "", false
	case rest[0] < '0' || rest[0] > '9':
		return "", true
	}
	rest = rest[1:]
	switch {
	case len(rest) == 0, len(rest) == 1 && rest[0] == '\r':
		return "", false
	case rest[0] == '\n', rest[0] == '\r' && rest[1] == '\n':
		return runtime.AppHTTP11, true
	}
	return "", true
}

// hasApplicationProtocols reports whether some chain of l matches application
// protocols, so that a TLS connection's chain depends on its ALPN.
func hasApplicationProtocols(l *runtime.Listener) bool {
	for _, c := range l.Chains {
		if len(c.ApplicationProtocols) > 0 {
			return true
		}
	}
	return false
}

package serverlimits

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Reasons a request head is refused; they are the last segment of the reject
// request's path and the body of the answer.
const (
	ReasonHeaderTooLarge = "header-block-too-large"
	ReasonTooManyHeaders = "too-many-headers"
	ReasonBareLF         = "bare-lf"
	ReasonBadRequestLine = "bad-request-line"
	ReasonBadMethod      = "bad-method"
	ReasonBadVersion     = "bad-version"
	ReasonBadHeaderName  = "bad-header-name"
	ReasonBadHeaderValue = "bad-header-value"
	ReasonFolding        = "obsolete-line-folding"
	ReasonCLAndTE        = "content-length-and-transfer-encoding"
	ReasonDuplicateCL    = "duplicate-content-length"
	ReasonDuplicateHost  = "duplicate-host"
	ReasonBadCL          = "bad-content-length"
	ReasonBadTE          = "bad-transfer-encoding"
)

// RejectMethod is the method of the request a guarded connection hands net/http in
// place of a refused head (see Guard). A client that sends it itself only gets its
// own request refused.
const RejectMethod = "TRELLIS-REJECT"

// maxChunkLine bounds a chunk-size line (size and extensions).
const maxChunkLine = 4 << 10

// maxContentLength bounds Content-Length and chunk sizes (2^60 bytes).
const maxContentLength = 1 << 60

// Guard wraps an HTTP/1.x server connection so that net/http (or the sidecar's own
// HTTP/1.x loop, proxy/h1server, which reads a connection the same way) only ever
// reads request heads that passed strict validation, framed the one way the sidecar
// and any server behind it agree on. It reads ahead of net/http a whole head (at most
// MaxHeaderBytes) and checks: request line "token SP target SP HTTP/1.0|1.1 CRLF";
// header names are tokens and values have no control characters but HTAB; no bare LF
// or CR, no obsolete line folding; at most MaxHeaders fields; at most one
// Content-Length, all digits; at most one Host; Transfer-Encoding exactly "chunked"
// and never with a Content-Length nor on HTTP/1.0. Bodies are passed through as they arrive while
// their framing (length, chunk sizes, trailers) is followed, so that the next head
// is found where net/http will look for it.
//
// A refused head is never given to net/http: the guard hands it, instead, a request
// "TRELLIS-REJECT /<status>/<reason>" that Handler answers with that status and
// "Connection: close", then end of stream. net/http reads it only once the answers
// to the requests before it are written, so answers stay in order. A malformed
// chunked body ends the stream where it goes wrong: the body reader fails and the
// connection is closed.
//
// A connection that starts with the HTTP/2 preface, or after a CONNECT or an
// Upgrade request, is passed through unchecked (HTTP/2 and tunnels have their own
// framing). A Guard is used by one reader at a time, as net/http reads a connection.
func (l Limits) Guard(c net.Conn) net.Conn {
	return &guardConn{Conn: c, lim: l.WithDefaults(), first: true}
}

type guardState int

const (
	stHead guardState = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailers
	stPass
	stDone
)

type guardConn struct {
	net.Conn
	lim Limits

	state guardState
	first bool   // no head seen yet: the HTTP/2 preface may come
	in    []byte // bytes read, not yet released (a head in progress)
	// out is the bytes released, not yet read by net/http: usually the part of in's
	// array just before in (release moves a boundary, it does not copy).
	out []byte
	// inBuf is the array in starts in when the connection reads again with nothing
	// pending, kept from request to request so that a keep-alive connection does
	// not allocate per head.
	inBuf     []byte
	remaining int64 // body or chunk bytes still to pass
	deadline  bool  // a body read deadline is set

	// the head in progress
	scanned int // bytes of in already split into lines
	lines   int
	head    headInfo
}

type headInfo struct {
	http10     bool
	connect    bool // the method is CONNECT
	cls        int
	cl         int64
	hosts      int
	te         int
	chunked    bool
	upgrade    bool
	connUpgrad bool
}

// NetConn returns the guarded connection (as tls.Conn.NetConn does).
func (g *guardConn) NetConn() net.Conn { return g.Conn }

// TLSState returns the TLS state of a guarded TLS connection, nil otherwise.
func (g *guardConn) TLSState() *tls.ConnectionState {
	if tc, ok := g.Conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

func (g *guardConn) Read(p []byte) (int, error) {
	for {
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		switch g.state {
		case stDone:
			return 0, io.EOF
		case stPass:
			if len(g.in) > 0 {
				g.out, g.in = g.in, nil
				continue
			}
			return g.Conn.Read(p)
		case stBody:
			if len(g.in) == 0 {
				// The body goes straight to the reader, without a copy.
				g.bodyDeadline()
				n, err := g.Conn.Read(p[:int(min(int64(len(p)), g.remaining))])
				g.remaining -= int64(n)
				if g.remaining == 0 {
					g.state = stHead
					g.clearDeadline()
				}
				return n, err
			}
		}
		if len(g.in) > 0 {
			g.process()
			if len(g.out) > 0 || g.state == stDone || g.state == stPass {
				continue
			}
		}
		g.bodyDeadline()
		n, err := g.readMore()
		if n > 0 {
			g.process()
		}
		g.clearDeadline()
		if err != nil && len(g.out) == 0 {
			// The state survives a read error: net/http cancels its background
			// read with a deadline and reads on.
			return 0, err
		}
	}
}

// bodyDeadline bounds the next read while a body is being read: a body that
// stalls for IdleTimeout fails (net/http sets no read deadline on bodies).
func (g *guardConn) bodyDeadline() {
	switch g.state {
	case stBody, stChunkSize, stChunkData, stChunkEnd, stTrailers:
		_ = g.Conn.SetReadDeadline(time.Now().Add(g.lim.IdleTimeout))
		g.deadline = true
	}
}

// clearDeadline removes the body's read deadline once the body is read, so that it
// cannot cut net/http's background read of the next request.
func (g *guardConn) clearDeadline() {
	switch g.state {
	case stBody, stChunkSize, stChunkData, stChunkEnd, stTrailers:
		return
	}
	if g.deadline {
		_ = g.Conn.SetReadDeadline(time.Time{})
		g.deadline = false
	}
}

// process moves what it can from in to out, following the framing.
func (g *guardConn) process() {
	for len(g.in) > 0 {
		switch g.state {
		case stHead:
			if !g.processHead() {
				return
			}
		case stBody:
			n := min(int64(len(g.in)), g.remaining)
			g.release(int(n))
			g.remaining -= n
			if g.remaining == 0 {
				g.state = stHead
			}
		case stChunkSize:
			line, ok := g.line(maxChunkLine)
			if !ok {
				return
			}
			size, valid := chunkSize(line)
			if !valid {
				g.fail()
				return
			}
			g.release(len(line) + 2)
			if size == 0 {
				g.state, g.lines, g.scanned = stTrailers, 0, 0
			} else {
				g.state, g.remaining = stChunkData, size
			}
		case stChunkData:
			n := min(int64(len(g.in)), g.remaining)
			g.release(int(n))
			g.remaining -= n
			if g.remaining == 0 {
				g.state = stChunkEnd
			}
		case stChunkEnd:
			if len(g.in) < 2 {
				if g.in[0] != '\r' {
					g.fail()
				}
				return
			}
			if g.in[0] != '\r' || g.in[1] != '\n' {
				g.fail()
				return
			}
			g.release(2)
			g.state = stChunkSize
		case stTrailers:
			line, ok := g.line(g.lim.MaxHeaderBytes)
			if !ok {
				return
			}
			if line == nil {
				return // failed
			}
			if len(line) == 0 {
				g.release(2)
				g.state, g.lines = stHead, 0 // the next line is a request line
				continue
			}
			// Checked before it is released: release may move the bytes of line.
			if g.lines++; g.lines > g.lim.MaxHeaders || headerField(line, &headInfo{}) != "" {
				g.fail()
				return
			}
			g.release(len(line) + 2)
		case stPass, stDone:
			return
		}
	}
}

// line returns the next CRLF-terminated line at the start of in, without its CRLF;
// ok false while it is incomplete. A bare LF, or a line longer than max, fails the
// stream (ok true, nil line).
func (g *guardConn) line(max int) ([]byte, bool) {
	i := bytes.IndexByte(g.in, '\n')
	if i < 0 {
		if len(g.in) > max {
			g.fail()
			return nil, true
		}
		return nil, false
	}
	if i == 0 || g.in[i-1] != '\r' || i > max {
		g.fail()
		return nil, true
	}
	return g.in[: i-1 : i-1], true
}

// maxKeptBuffer bounds the buffers a connection keeps between requests; a bigger
// one (a big head) is let go.
const maxKeptBuffer = 16 << 10

// readMore reads from the connection into the free end of in. It is called only
// once out is empty (Read hands out what was released first), so in's array is
// free but for in itself.
func (g *guardConn) readMore() (int, error) {
	if len(g.in) == 0 {
		g.in = g.inBuf[:0] // read from the start of the array again
	}
	if cap(g.in)-len(g.in) < 1024 {
		buf := g.inBuf
		if len(g.in)+4096 > cap(buf) {
			buf = make([]byte, 0, max(4096, 2*len(g.in)))
		}
		g.in = append(buf[:0], g.in...) // to the front (memmove), or to a bigger array
		g.inBuf = buf[:0]
	}
	n, err := g.Conn.Read(g.in[len(g.in):cap(g.in)])
	g.in = g.in[:len(g.in)+n]
	return n, err
}

// release moves the first n bytes of in to out. out is then the bytes of in's array
// just before in, with no copy, unless bytes were skipped between them (empty lines
// before a request): then they are moved up to the end of out, so a slice of in
// must not be used after it is released.
func (g *guardConn) release(n int) {
	switch {
	case len(g.out) == 0:
		g.out = g.in[:n]
	case len(g.in) > 0 && cap(g.out) > len(g.out) && &g.out[:len(g.out)+1][len(g.out)] == &g.in[0]:
		g.out = g.out[:len(g.out)+n]
	default:
		// What lies after out in its array is in's (skipped or still pending) or
		// free: the move overwrites nothing still to be read.
		g.out = append(g.out, g.in[:n]...)
	}
	g.in = g.in[n:]
	if len(g.in) == 0 && cap(g.inBuf) > maxKeptBuffer {
		g.inBuf = nil // a big head's array is not kept for the next one
	}
}

// fail ends the stream where a body's framing went wrong.
func (g *guardConn) fail() {
	g.state, g.in = stDone, nil
}

// reject replaces the head in progress with the reject request and ends the stream
// after it (appending to out may overwrite in: it is dropped).
func (g *guardConn) reject(status int, reason string) {
	g.out = append(g.out, fmt.Sprintf("%s /%d/%s HTTP/1.1\r\nHost: reject\r\n\r\n", RejectMethod, status, reason)...)
	g.state, g.in = stDone, nil
}

// processHead splits the head in progress into lines as they complete and checks
// each; at its empty line it releases the head and sets the body's framing. It
// returns false while the head is incomplete, or once the stream is refused.
func (g *guardConn) processHead() bool {
	if g.first {
		n := min(len(g.in), len(H2Preface))
		if bytes.Equal(g.in[:n], H2Preface[:n]) {
			if n == len(H2Preface) {
				g.state = stPass
				return true
			}
			return false
		}
		g.first = false
	}
	if g.lines == 0 && g.scanned == 0 {
		// A client may send an empty line before a request (RFC 9112, 2.2).
		for len(g.in) >= 2 && g.in[0] == '\r' && g.in[1] == '\n' {
			g.in = g.in[2:]
		}
		if len(g.in) == 0 || len(g.in) == 1 && g.in[0] == '\r' {
			return false
		}
	}
	for {
		i := bytes.IndexByte(g.in[g.scanned:], '\n')
		if i < 0 {
			if len(g.in) > g.lim.MaxHeaderBytes {
				g.reject(431, ReasonHeaderTooLarge)
			}
			return false
		}
		end := g.scanned + i // index of '\n'
		if end+1 > g.lim.MaxHeaderBytes {
			g.reject(431, ReasonHeaderTooLarge)
			return false
		}
		if end == 0 || g.in[end-1] != '\r' {
			g.reject(400, ReasonBareLF)
			return false
		}
		line := g.in[g.scanned : end-1]
		g.scanned = end + 1
		if g.lines == 0 {
			if reason := g.requestLine(line); reason != "" {
				g.reject(400, reason)
				return false
			}
			g.lines++
			continue
		}
		if len(line) == 0 {
			return g.endHead()
		}
		if g.lines++; g.lines > g.lim.MaxHeaders+1 {
			g.reject(431, ReasonTooManyHeaders)
			return false
		}
		if reason := headerField(line, &g.head); reason != "" {
			g.reject(400, reason)
			return false
		}
	}
}

// endHead checks the framing of a complete head, releases it and moves to its body.
func (g *guardConn) endHead() bool {
	h := g.head
	switch {
	case h.te > 0 && h.cls > 0:
		g.reject(400, ReasonCLAndTE)
		return false
	case h.te > 1, h.te == 1 && (!h.chunked || h.http10):
		g.reject(400, ReasonBadTE)
		return false
	case h.cls > 1:
		g.reject(400, ReasonDuplicateCL)
		return false
	case h.hosts > 1:
		g.reject(400, ReasonDuplicateHost)
		return false
	}
	g.release(g.scanned)
	g.scanned, g.lines, g.head = 0, 0, headInfo{}
	switch {
	case h.connect, h.upgrade && h.connUpgrad:
		g.state = stPass
	case h.chunked:
		g.state = stChunkSize
	case h.cl > 0:
		g.state, g.remaining = stBody, h.cl
	}
	return true
}

// requestLine checks "method SP target SP version".
func (g *guardConn) requestLine(line []byte) string {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return ReasonBadRequestLine
	}
	method := line[:sp]
	for _, c := range method {
		if !IsTokenChar(c) {
			return ReasonBadMethod
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return ReasonBadRequestLine
	}
	for _, c := range rest[:sp] {
		if c <= ' ' || c == 0x7f {
			return ReasonBadRequestLine
		}
	}
	switch string(rest[sp+1:]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		g.head.http10 = true
	default:
		return ReasonBadVersion
	}
	g.head.connect = string(method) == "CONNECT" // no allocation
	return ""
}

// headerField checks one "name: value" line and notes the framing fields in h.
func headerField(line []byte, h *headInfo) string {
	if line[0] == ' ' || line[0] == '\t' {
		return ReasonFolding
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return ReasonBadHeaderName
	}
	name := line[:colon]
	for _, c := range name {
		if !IsTokenChar(c) {
			return ReasonBadHeaderName
		}
	}
	value := line[colon+1:]
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return ReasonBadHeaderValue
		}
	}
	value = bytes.Trim(value, " \t")
	switch {
	case asciiEqualFold(name, "content-length"):
		h.cls++
		n, ok := parseLength(value)
		if !ok {
			return ReasonBadCL
		}
		h.cl = n
	case asciiEqualFold(name, "transfer-encoding"):
		h.te++
		h.chunked = asciiEqualFold(value, "chunked")
	case asciiEqualFold(name, "host"):
		h.hosts++
	case asciiEqualFold(name, "upgrade"):
		h.upgrade = true
	case asciiEqualFold(name, "connection"):
		for tok := range bytes.SplitSeq(value, []byte(",")) {
			if asciiEqualFold(bytes.Trim(tok, " \t"), "upgrade") {
				h.connUpgrad = true
			}
		}
	}
	return ""
}

// parseLength parses a Content-Length: digits only, at most maxContentLength.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil && n <= maxContentLength
}

// chunkSize parses a chunk-size line: hex digits, then optional extensions.
func chunkSize(line []byte) (int64, bool) {
	i := 0
	for i < len(line) && isHex(line[i]) {
		i++
	}
	if i == 0 || i > 15 {
		return 0, false
	}
	for _, c := range line[i:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, false
		}
	}
	if rest := bytes.TrimLeft(line[i:], " \t"); len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line[:i]), 16, 64)
	return n, err == nil && n <= maxContentLength
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// IsTokenChar reports whether c may appear in an HTTP token (RFC 9110 tchar).
func IsTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// H2Preface is the HTTP/2 client connection preface.
var H2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of one request. The head is written when the
// first body byte is (a declared Content-Length), when the buffered body outgrows
// the buffer or is flushed (chunked over HTTP/1.1, delimited by the connection's end
// over HTTP/1.0), or when the handler returns (Content-Length: what it wrote).
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	body   reqBody

	status     int  // the final status; 0 until WriteHeader
	committed  bool // the head is in the write buffer
	chunked    bool
	noBody     bool // HEAD, 1xx, 204, 304: no body goes out
	closeAfter bool // the connection ends after this response
	hijacked   bool
	finished   bool  // the handler returned
	declared   int64 // Content-Length the handler set, -1 when none
	written    int64 // body bytes the handler wrote
	// contentLength is the Content-Length sent, -1 when none.
	contentLength int64

	// mu orders the head (and interim responses) with a 100 Continue that a body
	// reader on another goroutine sends.
	mu sync.Mutex
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
	_ http.Hijacker       = (*response)(nil)
	_ io.ReaderFrom       = (*response)(nil)
)

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.hijacked || w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.status = code
	w.declared = -1
	if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			w.header.Del("Content-Length")
		}
	}
	w.noBody = w.req.Method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
}

// informational writes a 1xx response with the current header, at once. An
// HTTP/1.0 client gets none (RFC 9110, 15.2).
func (w *response) informational(code int) {
	if !w.req.ProtoAtLeast(1, 1) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if code == http.StatusContinue {
		w.body.expectContinue = false
	}
	bw := w.c.bw
	writeStatusLine(bw, true, code)
	w.c.keys = writeHeader(bw, w.header, w.c.keys)
	bw.WriteString("\r\n")
	_ = bw.Flush()
}

// sendContinue answers "Expect: 100-continue" before the body is read, unless the
// response has begun.
func (w *response) sendContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed || w.status != 0 || w.hijacked {
		return
	}
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = bw.Flush()
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.declared < 0 && len(w.c.pending)+len(p) <= writeBufSize {
			w.c.pending = append(w.c.pending, p...)
			return len(p), nil
		}
		w.commit()
	}
	return w.writeBody(p)
}

// ReadFrom copies r to the body through a pooled buffer (io.Copy to the response
// would otherwise allocate 32 KiB per call).
func (w *response) ReadFrom(r io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[copyBufSize]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(writerOnly{w}, r, buf[:])
}

const copyBufSize = 8 << 10

var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// writerOnly hides every method of a writer but Write (so that io.CopyBuffer does
// not call ReadFrom again).
type writerOnly struct{ io.Writer }

// writeBody writes body bytes after the head.
func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
		n, err := bw.Write(p)
		bw.WriteString("\r\n")
		return n, err
	}
	return bw.Write(p)
}

// commit writes the head, then the body buffered so far.
func (w *response) commit() {
	w.mu.Lock()
	w.commitLocked()
	w.mu.Unlock()
	if len(w.c.pending) > 0 {
		p := w.c.pending
		w.c.pending = w.c.pending[:0]
		_, _ = w.writeBody(p)
	}
}

func (w *response) commitLocked() {
	w.committed = true
	h := w.header
	req := w.req
	http11 := req.ProtoAtLeast(1, 1)
	if w.c.srv.draining.Load() {
		w.closeAfter = true
	}
	if hasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	delete(h, "Connection")
	delete(h, "Transfer-Encoding")
	_, trailers := h["Trailer"]
	w.contentLength = -1
	switch {
	case w.status == http.StatusSwitchingProtocols:
		w.closeAfter = true // unless hijacked: the protocol did not switch here
	case w.declared >= 0:
		w.contentLength = w.declared
	case w.noBody:
		// HEAD answers with the length of the body a GET would have; 204 and 304
		// have none.
	case w.finished && !trailers:
		w.contentLength = int64(len(w.c.pending))
		h["Content-Length"] = []string{strconv.Itoa(len(w.c.pending))}
	case http11:
		w.chunked = true
	default:
		w.closeAfter = true // the body ends with the connection
	}
	if _, ok := h["Content-Type"]; !ok && !w.noBody && len(w.c.pending) > 0 {
		h["Content-Type"] = []string{http.DetectContentType(w.c.pending)}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = dateValue()
	}
	bw := w.c.bw
	writeStatusLine(bw, http11, w.status)
	w.c.keys = writeHeader(bw, h, w.c.keys)
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.status == http.StatusSwitchingProtocols:
		writeField(bw, "Connection", "Upgrade")
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case !http11:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

// Flush sends the head and what the body has so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush, with its error (http.ResponseController).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit()
	}
	return w.c.bw.Flush()
}

// Hijack hands the connection to the handler: the server neither reads nor writes
// it again, nor closes it. What the response had written is flushed first.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.status != 0 && !w.committed {
		w.commit()
	}
	if err := w.c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.c.watch.stop()
	w.hijacked = true
	_ = w.c.nc.SetDeadline(time.Time{})
	return w.c.nc, bufio.NewReadWriter(w.c.br, w.c.bw), nil
}

// SetReadDeadline and SetWriteDeadline set the connection's deadlines
// (http.ResponseController).
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// EnableFullDuplex allows reading the request body after writing the response
// began, which this server always allows (http.ResponseController).
func (w *response) EnableFullDuplex() error { return nil }

// finish completes the response after the handler: the head if not yet written,
// the end of a chunked body, then a flush. The request body is drained first, so
// that the head can say when the connection closes.
func (w *response) finish() {
	w.finished = true
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.body.finish(!w.closeAfter) {
		w.closeAfter = true
	}
	if !w.committed {
		w.commit()
	}
	bw := w.c.bw
	switch {
	case w.chunked:
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	case w.contentLength >= 0 && !w.noBody && w.written < w.contentLength:
		w.closeAfter = true // the body is short of its length: only the end tells
	}
	if err := bw.Flush(); err != nil {
		w.closeAfter = true
	}
}

// writeTrailers writes the trailers the handler announced ("Trailer") or set
// (http.TrailerPrefix).
func (w *response) writeTrailers() {
	bw := w.c.bw
	for _, names := range w.header["Trailer"] {
		for name := range strings.SplitSeq(names, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			for _, v := range w.header[name] {
				writeField(bw, name, v)
			}
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				writeField(bw, name, v)
			}
		}
	}
}

func writeStatusLine(bw *bufio.Writer, http11 bool, code int) {
	if http11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	var b [3]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

// writeHeader writes the fields of h in the order of their names, but the
// trailers (http.TrailerPrefix). keys is a buffer for the names, returned for reuse.
func writeHeader(bw *bufio.Writer, h http.Header, keys []string) []string {
	keys = keys[:0]
	for k := range h {
		if !strings.HasPrefix(k, http.TrailerPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			writeField(bw, k, v)
		}
	}
	clear(keys)
	return keys[:0]
}

// writeField writes "k: v"; a value's CR and LF become spaces, as net/http writes
// them.
func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(strings.TrimSpace(v))
	bw.WriteString("\r\n")
}

// hasToken reports whether a comma-separated header value lists token.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// dateCache is the Date field of responses sent within one second.
type dateCache struct {
	unix  int64
	value []string // shared by the headers: never modified
}

var dates atomic.Pointer[dateCache]

// dateValue returns the current Date field value, formatted once a second.
func dateValue() []string {
	now := time.Now()
	if d := dates.Load(); d != nil && d.unix == now.Unix() {
		return d.value
	}
	d := &dateCache{unix: now.Unix(), value: []string{now.UTC().Format(http.TimeFormat)}}
	dates.Store(d)
	return d.value
}

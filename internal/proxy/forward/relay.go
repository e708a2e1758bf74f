package forward

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// relay forwards a request that h1Transport sends itself (an HTTP/1.1 upstream, a
// body of known length of at most maxInlineBody, no trailers, no upgrade) without
// the reverse proxy: the forward path owns the request, so it is sent as it is,
// with its headers changed in place, rather than cloned with its headers and URL,
// and the response's headers are the client's (modifyResponse moves them). What
// the reverse proxy would do to such a request and its response, relay does too:
// hop-by-hop headers removed both ways ("TE: trailers" kept), no User-Agent added,
// unparsable query parameters re-encoded, the response streamed with a flush after
// every write when its length is unknown or it is an event stream, its trailers
// announced and forwarded, and a body that breaks off aborts the client connection.
// It reports false, having done nothing, for any other request (the reverse proxy
// serves it).
func (up *upstream) relay(x *exchange, r *http.Request) bool {
	if up.attempts.http2 || !relayable(r) {
		return false
	}
	out := r.WithContext(x.ctx())
	if out.ContentLength == 0 {
		out.Body = nil // no body: the transport may send it again
	}
	out.Close = false
	prepareRequest(out)
	resp, err := up.attempts.RoundTrip(out)
	if err != nil {
		up.errorf(&x.rw, out, err)
		return true
	}
	removeHopHeaders(resp.Header)
	if err := modifyResponse(resp); err != nil {
		resp.Body.Close()
		up.errorf(&x.rw, out, err)
		return true
	}
	h := x.rw.Header()
	for k, vv := range resp.Header { // left by moveHeaders: event streams
		h[k] = append(h[k], vv...)
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	x.rw.WriteHeader(resp.StatusCode)
	if err := up.copyBody(x, resp, streaming(resp)); err != nil {
		resp.Body.Close()
		if out.Context().Value(http.ServerContextKey) != nil {
			// Under net/http's server, as the reverse proxy does: abort the client's
			// connection. h1server ends a response shorter than its length itself.
			panic(http.ErrAbortHandler)
		}
		return true
	}
	resp.Body.Close() // sets resp.Trailer
	if len(resp.Trailer) == 0 {
		return true
	}
	_ = http.NewResponseController(&x.rw).Flush()
	prefix := ""
	if len(resp.Trailer) != announced {
		prefix = http.TrailerPrefix
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			h.Add(prefix+k, v)
		}
	}
	return true
}

// relayable reports whether relay serves r: what h1Transport takes, with no
// upgrade asked for.
func relayable(r *http.Request) bool {
	switch {
	case r.ContentLength < 0 || r.ContentLength > maxInlineBody:
		return false
	case r.ContentLength > 0 && (r.Body == nil || r.Body == http.NoBody):
		return false
	case len(r.Trailer) > 0 || r.URL.Opaque != "" || r.Method == http.MethodConnect:
		return false
	}
	_, upgrade := r.Header["Upgrade"]
	return !upgrade
}

// teTrailers and noUserAgent are shared header values (capacity their length: an
// append copies them).
var (
	teTrailers  = []string{"trailers"}
	noUserAgent = []string{""}
)

// prepareRequest turns the client's request into the upstream's, in place: origin
// form over plain HTTP, hop-by-hop headers removed but "TE: trailers", no
// User-Agent added by the transport, unparsable query parameters re-encoded. The
// forwarding headers (X-Forwarded-*, Forwarded) pass as they are (see outgoing).
func prepareRequest(r *http.Request) {
	h := r.Header
	te := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	removeHopHeaders(h)
	if te {
		h["Te"] = teTrailers
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
	r.URL.Scheme = "http"
	r.URL.User = nil
	r.URL.RawQuery = cleanQuery(r.URL.RawQuery)
}

// removeHopHeaders deletes the headers the Connection header names and the
// standard hop-by-hop ones.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.Trim(f, " \t"); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range connectionHeaders {
		delete(h, k)
	}
}

// connectionHeaders are the headers that concern one connection only.
var connectionHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// maxQueryParams is the most query parameters url.ParseQuery keeps.
const maxQueryParams = 10000

// cleanQuery returns q, or, when a parameter has a semicolon or a broken percent
// escape or there are more than maxQueryParams, q parsed and encoded again (which
// drops such parameters), as the reverse proxy sends it.
func cleanQuery(q string) string {
	ok := strings.Count(q, "&") < maxQueryParams
	for i := 0; ok && i < len(q); i++ {
		switch q[i] {
		case ';':
			ok = false
		case '%':
			ok = i+2 < len(q) && isHex(q[i+1]) && isHex(q[i+2])
			i += 2
		}
	}
	if ok {
		return q
	}
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// streaming reports whether a response is flushed after every write: its length is
// unknown (a stream) or it is an event stream.
func streaming(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// copyBody sends the response body to the client through a pooled buffer, flushing
// the head and every write when flush is set.
func (up *upstream) copyBody(x *exchange, resp *http.Response, flush bool) error {
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	var rc *http.ResponseController
	if flush {
		// The head first: a stream's first bytes may be long in coming.
		rc = http.NewResponseController(&x.rw)
		_ = rc.Flush()
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			up.logger.Debug("reading the upstream's response body", "error", rerr)
		}
		if n > 0 {
			if _, werr := x.rw.Write(buf[:n]); werr != nil {
				return werr
			}
			if rc != nil {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

package authz

import (
	"errors"
	"strings"
)

// EscapedSlashes is what normalization does with %2F, %2f, %5C and %5c in a path:
// Envoy's path_with_escaped_slashes_action.
type EscapedSlashes uint8

const (
	// KeepEscapedSlashes leaves them as they are (upper-cased, like every
	// percent-encoding that is not decoded).
	KeepEscapedSlashes EscapedSlashes = iota
	// RejectEscapedSlashes refuses the request with 400.
	RejectEscapedSlashes
	// UnescapeSlashes decodes them to / and \ before the rest of normalization.
	UnescapeSlashes
)

// PathOptions are the normalization options of an HTTP connection manager.
type PathOptions struct {
	// MergeSlashes replaces every run of / with one.
	MergeSlashes bool
	// EscapedSlashes says what to do with encoded slashes and backslashes.
	EscapedSlashes EscapedSlashes
}

// ErrBadPath is wrapped by NormalizePath's error for a request target that must be
// refused with 400.
var ErrBadPath = errors.New("bad request path")

func badPath(msg string) error { return &pathError{msg} }

type pathError struct{ msg string }

func (e *pathError) Error() string { return "bad request path: " + e.msg }
func (e *pathError) Unwrap() error { return ErrBadPath }

// NormalizePath normalizes an origin-form request target (path and optional query;
// a fragment is dropped) as docs/xds.md, "Path normalization", says. It returns the
// normalized path (still percent-encoded where a character is not unreserved) and
// the query (unchanged, without "?"; hasQuery tells "/a?" from "/a"). The result is
// idempotent. It allocates only when the path changes.
func NormalizePath(target string, opts PathOptions) (path, query string, hasQuery bool, err error) {
	if target == "" || target[0] != '/' {
		return "", "", false, badPath("does not start with /")
	}
	// 1. Refuse raw bytes outside 0x21-0x7E, encoded control characters (in the
	// query too: it reaches the app) and, in the path, a % that starts no
	// percent-encoding.
	inQuery := false
	for i := 0; i < len(target); i++ {
		c := target[i]
		if c < 0x21 || c > 0x7e {
			return "", "", false, badPath("raw byte outside 0x21-0x7E")
		}
		if c == '#' {
			break // the fragment is dropped below
		}
		if c == '?' {
			inQuery = true
		}
		if c != '%' {
			continue
		}
		if i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2]) {
			if inQuery {
				continue
			}
			return "", "", false, badPath("% not followed by two hex digits")
		}
		if v := unhex(target[i+1])<<4 | unhex(target[i+2]); v < 0x20 || v == 0x7f {
			return "", "", false, badPath("encoded NUL or control character")
		}
		i += 2
	}
	// 2. Drop the fragment.
	if i := strings.IndexByte(target, '#'); i >= 0 {
		target = target[:i]
	}
	// 3. Split off the query.
	path = target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		path, query, hasQuery = target[:i], target[i+1:], true
	}
	if isNormal(path, opts) {
		return path, query, hasQuery, nil
	}
	path, err = normalizeSlow(path, opts)
	return path, query, hasQuery, err
}

// isNormal reports whether path is already normalized: the common case, checked
// without allocating.
func isNormal(p string, opts PathOptions) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) {
				return false
			}
			h1, h2 := p[i+1], p[i+2]
			if 'a' <= h1 && h1 <= 'f' || 'a' <= h2 && h2 <= 'f' {
				return false
			}
			v := unhex(h1)<<4 | unhex(h2)
			if unreserved(v) || (v == '/' || v == '\\') && opts.EscapedSlashes != KeepEscapedSlashes {
				return false
			}
			i += 2
		case c == '\\' || c == ';' || !pchar(c):
			return false
		case c == '/':
			if opts.MergeSlashes && i+1 < len(p) && p[i+1] == '/' {
				return false
			}
			// A dot segment: "/." or "/.." followed by "/" or the end.
			if i+1 < len(p) && p[i+1] == '.' {
				rest := p[i+2:]
				if rest == "" || rest[0] == '/' || rest[0] == '.' && (len(rest) == 1 || rest[1] == '/') {
					return false
				}
			}
		}
	}
	return true
}

// normalizeSlow runs steps 4 to 9 on a path that needs them.
func normalizeSlow(p string, opts PathOptions) (string, error) {
	b := make([]byte, 0, len(p))
	// 4, 5, 6: escaped slashes, unreserved characters, upper-case hex, backslashes;
	// raw characters that RFC 3986 does not allow in a path are encoded, so that
	// each path has one spelling. 7: path parameters are cut from each segment.
	inParams := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case v == '/' || v == '\\':
				switch opts.EscapedSlashes {
				case RejectEscapedSlashes:
					return "", badPath("escaped slash or backslash")
				case UnescapeSlashes:
					c = '/' // a backslash becomes a slash in step 6 anyway
				default:
					if !inParams {
						b = appendEscaped(b, v)
					}
					continue
				}
			case unreserved(v):
				c = v
			default:
				if !inParams {
					b = appendEscaped(b, v)
				}
				continue
			}
		}
		if c == '\\' {
			c = '/'
		}
		switch {
		case c == '/':
			inParams = false
			b = append(b, '/')
		case inParams:
		case c == ';':
			inParams = true
		case pchar(c):
			b = append(b, c)
		default:
			b = appendEscaped(b, c)
		}
	}
	// 8. Merge slashes.
	if opts.MergeSlashes {
		w := 0
		for r := 0; r < len(b); r++ {
			if b[r] == '/' && w > 0 && b[w-1] == '/' {
				continue
			}
			b[w] = b[r]
			w++
		}
		b = b[:w]
	}
	// 9. Remove dot segments.
	return removeDotSegments(string(b)), nil
}

// removeDotSegments is RFC 3986 5.2.4 for an absolute path: "." segments go, ".."
// removes the segment before it and never climbs above "/".
func removeDotSegments(p string) string {
	if !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			trailing = last
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	r := "/" + strings.Join(out, "/")
	if trailing && !strings.HasSuffix(r, "/") {
		r += "/"
	}
	return r
}

func appendEscaped(b []byte, v byte) []byte {
	const hexUpper = "0123456789ABCDEF"
	return append(b, '%', hexUpper[v>>4], hexUpper[v&15])
}

// unreserved reports RFC 3986's unreserved characters: ALPHA DIGIT - . _ ~
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pchar reports the characters that may appear raw in a normalized path: RFC 3986's
// pchar (unreserved, sub-delims, ":" and "@") and "/". ";" is cut earlier.
func pchar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '/', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

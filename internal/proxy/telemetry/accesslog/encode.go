package accesslog

import (
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// appendLine appends the JSON line of e (with its newline) to b, as the sidecar of
// workload self reports it. The bytes are those encoding/json writes for
// render(self, e) with HTML escaping off: the same fields in the same order, the same
// escaping and number forms (encode_test.go compares the two). Once b has grown to
// the size of a line it allocates nothing.
func appendLine(b []byte, self *reqinfo.Peer, e *entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","trace_id":"`...)
	if e.traceID != [16]byte{} {
		b = hex.AppendEncode(b, e.traceID[:])
	}
	b = append(b, `","method":`...)
	b = appendString(b, e.method)
	b = append(b, `,"authority":`...)
	b = appendString(b, e.authority)
	b = append(b, `,"path":`...)
	b = appendString(b, e.path)
	b = append(b, `,"protocol":`...)
	b = appendString(b, e.proto)
	b = append(b, `,"response_code":`...)
	b = strconv.AppendInt(b, int64(e.code), 10)
	if e.grpcStatus >= 0 {
		b = append(b, `,"grpc_status":`...)
		b = strconv.AppendInt(b, int64(e.grpcStatus), 10)
	}
	b = append(b, `,"response_flags":"`...)
	b = e.flags.Append(b) // names of letters only
	b = append(b, `","duration_ms":`...)
	b = appendFloat(b, float64(e.duration.Microseconds())/1000)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, e.sent, 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, e.received, 10)
	b = append(b, `,"upstream_cluster":`...)
	b = appendString(b, e.cluster)
	b = append(b, `,"upstream_host":`...)
	b = appendString(b, e.host)
	src, dst, srcPrincipal, reporter := self, e.peer, "", "source"
	if e.inbound {
		src, dst, reporter = e.peer, self, "destination"
		srcPrincipal = e.principal
	} else if self != nil {
		srcPrincipal = self.Principal
	}
	b = append(b, `,"source":`...)
	b = appendParty(b, src, srcPrincipal)
	b = append(b, `,"destination":`...)
	dstPrincipal := ""
	if dst != nil {
		dstPrincipal = dst.Principal
	}
	b = appendParty(b, dst, dstPrincipal)
	b = append(b, `,"reporter":"`...)
	b = append(b, reporter...)
	b = append(b, '"')
	if e.audit {
		b = append(b, `,"audit":true`...)
	}
	return append(b, "}\n"...)
}

// appendParty appends the Party object of p with the given principal.
func appendParty(b []byte, p *reqinfo.Peer, principal string) []byte {
	var workload, namespace string
	if p != nil {
		workload, namespace = p.Workload, p.Namespace
	}
	b = append(b, `{"workload":`...)
	b = appendString(b, workload)
	b = append(b, `,"namespace":`...)
	b = appendString(b, namespace)
	b = append(b, `,"principal":`...)
	b = appendString(b, principal)
	return append(b, '}')
}

// appendFloat appends f as encoding/json writes a float64: the shortest decimal
// form, with an exponent only below 1e-6 or from 1e21, and a two-digit-minimum
// exponent trimmed to one digit ("1e-7", not "1e-07").
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json escapes it with
// HTML escaping off: '"' and '\\' with a backslash; \b, \f, \n, \r and \t by name;
// other bytes below 0x20 as \u00XX; U+2028 and U+2029 as \u2028 and \u2029 (they end
// lines in JavaScript); each byte that is not part of valid UTF-8 as \ufffd. Every
// other byte is copied as is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

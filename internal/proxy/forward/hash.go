package forward

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"

	"trellis.dev/trellis/internal/lb"
	"trellis.dev/trellis/internal/proxy/runtime"
)

// hashKey computes the request's hash key from the route's hash policies, combining
// several as Envoy does. A cookie policy with a TTL whose cookie is absent generates
// one (a random value), uses it as the key, and sets it on the response so that the
// client's next requests carry it.
func (x *exchange) hashKey(policies []runtime.HashPolicy) {
	for i := range policies {
		p := &policies[i]
		v, ok := "", false
		switch p.Kind {
		case runtime.HashHeader:
			if vs := x.req.Header[p.Name]; len(vs) > 0 {
				v, ok = vs[0], true
			}
		case runtime.HashCookie:
			v, ok = cookieValue(x.req.Header, p.Name)
			if !ok && p.HasCookieTTL {
				v, ok = newCookieValue(), true
				x.setCookie = cookieHeader(p, v)
			}
		case runtime.HashSourceIP:
			if host, _, err := net.SplitHostPort(x.req.RemoteAddr); err == nil {
				v, ok = host, true
			}
		case runtime.HashQueryParameter:
			v, ok = runtime.QueryValue(x.req, p.Name)
		}
		if !ok {
			continue
		}
		h := lb.HashString(v)
		if x.hasHash {
			h = lb.CombineHash(x.hash, h)
		}
		x.hash, x.hasHash = h, true
	}
}

// cookieValue finds a cookie without parsing every cookie of the request.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, found := strings.Cut(strings.TrimSpace(part), "=")
			if found && k == name {
				return strings.Trim(v, `"`), true
			}
		}
	}
	return "", false
}

func newCookieValue() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func cookieHeader(p *runtime.HashPolicy, value string) string {
	var b strings.Builder
	b.WriteString(p.Name + "=" + value)
	if p.CookiePath != "" {
		b.WriteString("; Path=" + p.CookiePath)
	}
	if p.CookieTTL > 0 {
		b.WriteString("; Max-Age=" + strconv.FormatInt(int64(p.CookieTTL.Seconds()), 10))
	}
	b.WriteString("; HttpOnly")
	return b.String()
}

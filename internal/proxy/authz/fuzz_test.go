package authz

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
)

// denyAdmin is the engine of a DENY on /admin, /admin/* and a header value, as the
// control plane emits it.
func denyAdmin(tb testing.TB) *Engine {
	tb.Helper()
	e, err := Compile(&rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"ns[default]-policy[no-admin]-rule[0]": {
			Permissions: []*rbacv3.Permission{permOr(permPath(exact("/admin")), permPath(prefix("/admin/")))},
			Principals:  []*rbacv3.Principal{prinAny()},
		},
		"ns[default]-policy[no-eve]-rule[0]": {
			Permissions: []*rbacv3.Permission{permHeader("x-user", exact("eve"))},
			Principals:  []*rbacv3.Principal{prinAny()},
		},
	}}, HTTPMode)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// FuzzNormalizeDeny feeds request targets and a header through normalization and
// a DENY engine. For every target that normalization accepts it checks that the
// result is normal (idempotent, no dot segment, no double slash, no backslash or
// path parameter), then builds a twin: another spelling of the same normalized
// path (encoded unreserved characters in either hex case, dot segments, doubled
// slashes, escaped slashes, backslashes, path parameters) and the same header with
// another value beside it. The twin must normalize to the same path, and the DENY
// engine must decide both alike.
func FuzzNormalizeDeny(f *testing.F) {
	for _, s := range []string{"/admin", "/public/a?x=1", "//admin/./x", "/%61dmin;x=1", "/a%2F..%2Fadmin", "/x\\..\\admin", "/admin#x"} {
		f.Add(s, uint64(1), "eve")
	}
	e := denyAdmin(f)
	f.Fuzz(func(t *testing.T, target string, seed uint64, user string) {
		for _, opts := range []PathOptions{defaultOpts, rejectOpts, mergeOpts} {
			path, _, _, err := NormalizePath(target, opts)
			if err != nil {
				continue
			}
			checkNormal(t, path, opts)
			twin := spell(path, rand.New(rand.NewPCG(seed, uint64(len(target)))), opts)
			got, _, _, err := NormalizePath(twin, opts)
			if err != nil {
				t.Fatalf("%+v: twin %q of %q refused: %v", opts, twin, path, err)
			}
			if got != path {
				t.Fatalf("%+v: twin %q of %q normalizes to %q", opts, twin, path, got)
			}
			h := http.Header{}
			h.Add("X-User", user)
			h2 := http.Header{}
			h2.Add("x-USER", "mallory")
			h2.Add("X-user", user)
			a, b := req("GET", path, h), req("GET", got, h2)
			if da, db := e.Allowed(a), e.Allowed(b); da != db {
				t.Fatalf("%+v: %q (x-user %q) allowed=%v but its twin %q allowed=%v", opts, path, user, da, twin, db)
			}
		}
	})
}

func checkNormal(t *testing.T, p string, opts PathOptions) {
	t.Helper()
	again, _, _, err := NormalizePath(p, opts)
	if err != nil || again != p {
		t.Fatalf("not idempotent: %q -> %q (%v)", p, again, err)
	}
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, "\\;#?") {
		t.Fatalf("not normal: %q", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			t.Fatalf("dot segment left in %q", p)
		}
	}
}

// spell writes the normalized path p another way that normalizes back to p.
func spell(p string, rng *rand.Rand, opts PathOptions) string {
	var b strings.Builder
	hex := "0123456789ABCDEF"
	if rng.IntN(2) == 0 {
		hex = "0123456789abcdef"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			// The end of a segment may carry parameters.
			if i > 0 && rng.IntN(4) == 0 {
				b.WriteString(";p=1")
			}
			switch k := rng.IntN(6); {
			case i == 0:
				b.WriteByte('/') // the target must start with one
			case k == 0:
				b.WriteString("//")
			case k == 1:
				if opts.EscapedSlashes == UnescapeSlashes {
					b.WriteString([]string{"%2F", "%2f", "%5C", "%5c"}[rng.IntN(4)])
				} else {
					b.WriteByte('/')
				}
			case k == 2:
				b.WriteByte('\\')
			default:
				b.WriteByte('/')
			}
			if i+1 < len(p) && p[i+1] != '/' {
				switch rng.IntN(5) {
				case 0:
					b.WriteString("./")
				case 1:
					b.WriteString("x/../")
				case 2:
					b.WriteString("%2e/")
				}
			}
		case unreserved(c) && rng.IntN(3) == 0:
			// An unreserved character, encoded.
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		case c == '%':
			// An encoding that stays, maybe in the other hex case.
			enc := p[i : i+3]
			if rng.IntN(2) == 0 {
				enc = strings.ToLower(enc)
			}
			b.WriteString(enc)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	if rng.IntN(4) == 0 {
		b.WriteString("#frag")
	}
	return b.String()
}

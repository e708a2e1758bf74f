package authz

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// FuzzRBACHeader compiles an ALLOW policy on one header's StringMatcher and checks
// its decision against Envoy's definition of the matcher, written plainly here:
// exact, prefix, suffix and contains compare bytes, folding ASCII letters only when
// ignore_case; safe_regex must be valid RE2 on its own and match the whole value.
func FuzzRBACHeader(f *testing.F) {
	f.Add(uint8(0), "admin", true, "ADMIN")
	f.Add(uint8(0), "k", true, "\u212a")
	f.Add(uint8(1), "sre", true, "\u017fre-team")
	f.Add(uint8(2), "@corp.example", false, "eve@corp.example")
	f.Add(uint8(3), "root", true, "x-Root-y")
	f.Add(uint8(4), "a)|(b", false, "abc")
	f.Add(uint8(4), `\Qa.b`, false, "a.b")
	f.Add(uint8(4), "(?i)adm[i1]n", false, "ADM1N")
	f.Fuzz(func(t *testing.T, kind uint8, value string, ignoreCase bool, header string) {
		sm := &matcherv3.StringMatcher{IgnoreCase: ignoreCase}
		switch kind % 5 {
		case 0:
			sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: value}
		case 1:
			sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: value}
		case 2:
			sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: value}
		case 3:
			sm.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: value}
		case 4:
			sm.IgnoreCase = false // Envoy refuses ignore_case with safe_regex
			sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: value}}
		}
		e, err := Compile(rules(rbacv3.RBAC_ALLOW, permHeader("x-user", sm), prinAny()), HTTPMode)
		var want bool
		if kind%5 == 4 {
			re, rerr := regexp.Compile(value)
			if (rerr == nil) != (err == nil) {
				t.Fatalf("regex %q: RE2 says %v, the engine says %v", value, rerr, err)
			}
			if err != nil {
				return
			}
			re.Longest()
			loc := re.FindStringIndex(header)
			want = loc != nil && loc[0] == 0 && loc[1] == len(header)
		} else {
			if err != nil {
				t.Fatalf("compiling %v: %v", sm, err)
			}
			v, s := value, header
			if ignoreCase {
				v, s = lowerASCII(v), lowerASCII(s)
			}
			want = [...]bool{s == v, strings.HasPrefix(s, v), strings.HasSuffix(s, v), strings.Contains(s, v)}[kind%5]
		}
		if got := e.Allowed(req("GET", "/", http.Header{"X-User": {header}})); got != want {
			t.Fatalf("matcher %d %q (ignore case %v) on %q: allowed %v, want %v", kind%5, value, ignoreCase, header, got, want)
		}
	})
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

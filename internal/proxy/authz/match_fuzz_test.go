package authz

import (
	"net/http"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"trellis.dev/trellis/internal/proxy/internal/strmatch/strmatchtest"
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
		if kind%strmatchtest.Kinds == strmatchtest.Regex {
			ignoreCase = false // Envoy refuses ignore_case with safe_regex
		}
		sm := strmatchtest.Matcher(kind, value, ignoreCase)
		e, err := Compile(rules(rbacv3.RBAC_ALLOW, permHeader("x-user", sm), prinAny()), HTTPMode)
		valid := kind%strmatchtest.Kinds != strmatchtest.Regex || strmatchtest.ValidRegex(value)
		if valid != (err == nil) {
			t.Fatalf("matcher %d %q: valid RE2 %v, the engine says %v", kind%strmatchtest.Kinds, value, valid, err)
		}
		if err != nil {
			return
		}
		want := strmatchtest.Match(kind, value, ignoreCase, header)
		if got := e.Allowed(req("GET", "/", http.Header{"X-User": {header}})); got != want {
			t.Fatalf("matcher %d %q (ignore case %v) on %q: allowed %v, want %v", kind%strmatchtest.Kinds, value, ignoreCase, header, got, want)
		}
	})
}

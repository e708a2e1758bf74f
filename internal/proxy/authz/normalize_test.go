package authz

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	defaultOpts = PathOptions{MergeSlashes: true, EscapedSlashes: UnescapeSlashes}
	rejectOpts  = PathOptions{MergeSlashes: true, EscapedSlashes: RejectEscapedSlashes}
	mergeOpts   = PathOptions{MergeSlashes: true, EscapedSlashes: KeepEscapedSlashes}
	baseOpts    = PathOptions{EscapedSlashes: KeepEscapedSlashes}
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		name   string
		target string
		opts   PathOptions
		want   string // path, "?" and the query when there is one; "400" for a refusal
	}{
		{"plain", "/a/b", defaultOpts, "/a/b"},
		{"root", "/", defaultOpts, "/"},
		{"query kept as is", "/a?x=%2F&y=..//", defaultOpts, "/a?x=%2F&y=..//"},
		{"empty query", "/a?", defaultOpts, "/a?"},
		{"fragment dropped", "/a#frag", defaultOpts, "/a"},
		{"fragment after query", "/a?q=1#frag", defaultOpts, "/a?q=1"},
		{"double slashes merged", "//a///b//", defaultOpts, "/a/b/"},
		{"double slashes kept in BASE", "//a//b", baseOpts, "//a//b"},
		{"dot segment", "/a/./b", defaultOpts, "/a/b"},
		{"dot dot", "/a/b/../c", defaultOpts, "/a/c"},
		{"dot dot above root", "/../../a", defaultOpts, "/a"},
		{"trailing dot dot", "/a/b/..", defaultOpts, "/a/"},
		{"trailing dot", "/a/.", defaultOpts, "/a/"},
		{"dots in names kept", "/a/.b/..c/...", defaultOpts, "/a/.b/..c/..."},
		{"encoded dot dot", "/a/%2e%2e/b", defaultOpts, "/b"},
		{"encoded dot dot upper", "/a/%2E%2E/b", defaultOpts, "/b"},
		{"half encoded dot dot", "/a/.%2e/b", defaultOpts, "/b"},
		{"encoded letters", "/%61dmin", defaultOpts, "/admin"},
		{"encoded unreserved", "/%7E%2D%5F%2E", defaultOpts, "/~-_."},
		{"reserved stays encoded, upper hex", "/a%3fb%3a", defaultOpts, "/a%3Fb%3A"},
		{"percent stays encoded once", "/a%2561", defaultOpts, "/a%2561"},
		{"escaped slash unescaped", "/a%2Fb", defaultOpts, "/a/b"},
		{"escaped slash lower unescaped", "/a%2fb", defaultOpts, "/a/b"},
		{"escaped slash then dot dot", "/a%2F..%2Fb", defaultOpts, "/b"},
		{"escaped backslash unescaped", "/a%5Cb", defaultOpts, "/a/b"},
		{"escaped slash rejected", "/a%2Fb", rejectOpts, "400"},
		{"escaped backslash rejected", "/a%5cb", rejectOpts, "400"},
		{"escaped slash kept", "/a%2fb/../c", mergeOpts, "/c"},
		{"escaped slash kept upper", "/a%2fb", mergeOpts, "/a%2Fb"},
		{"backslash", "/a\\b", defaultOpts, "/a/b"},
		{"backslash dot dot", "/a\\..\\b", defaultOpts, "/b"},
		{"path parameters", "/admin;x=1/a;b", defaultOpts, "/admin/a"},
		{"empty path parameter", "/admin;", defaultOpts, "/admin"},
		{"parameter hides dot dot", "/a;/../b", defaultOpts, "/b"},
		{"encoded semicolon is data", "/a%3bb", defaultOpts, "/a%3Bb"},
		{"raw characters outside pchar encoded", "/a{b}|c", defaultOpts, "/a%7Bb%7D%7Cc"},
		{"overlong utf8 dot stays encoded", "/%c0%ae%c0%ae/admin", defaultOpts, "/%C0%AE%C0%AE/admin"},
		{"utf8 stays encoded", "/caf%C3%A9", defaultOpts, "/caf%C3%A9"},
		{"raw NUL", "/a\x00b", defaultOpts, "400"},
		{"raw space", "/a b", defaultOpts, "400"},
		{"raw DEL", "/a\x7f", defaultOpts, "400"},
		{"raw high byte", "/caf\xc3\xa9", defaultOpts, "400"},
		{"encoded NUL", "/a%00b", defaultOpts, "400"},
		{"encoded control", "/a%0d%0aSet-Cookie:x", defaultOpts, "400"},
		{"encoded DEL", "/a%7F", defaultOpts, "400"},
		{"encoded NUL in query", "/a?x=%00", defaultOpts, "400"},
		{"bad percent", "/a%zz", defaultOpts, "400"},
		{"truncated percent", "/a%2", defaultOpts, "400"},
		{"bad percent in query allowed", "/a?q=100%", defaultOpts, "/a?q=100%"},
		{"relative", "a/b", defaultOpts, "400"},
		{"empty", "", defaultOpts, "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, query, hasQuery, err := NormalizePath(tt.target, tt.opts)
			got := path
			if hasQuery {
				got += "?" + query
			}
			if err != nil {
				if !errors.Is(err, ErrBadPath) {
					t.Fatalf("error %v does not wrap ErrBadPath", err)
				}
				got = "400"
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NormalizePath(%q) (-want +got):\n%s", tt.target, diff)
			}
			if err != nil {
				return
			}
			again, _, _, err := NormalizePath(path, tt.opts)
			if err != nil || again != path {
				t.Errorf("not idempotent: %q -> %q (%v)", path, again, err)
			}
		})
	}
}

// TestAdminTricks checks the regression corpus: every trick normalizes to /admin
// or below, or is refused.
func TestAdminTricks(t *testing.T) {
	for _, opts := range []PathOptions{defaultOpts, rejectOpts, mergeOpts} {
		for _, target := range AdminTricks(t) {
			path, _, _, err := NormalizePath(target, opts)
			if err != nil {
				continue
			}
			if opts.EscapedSlashes == KeepEscapedSlashes && strings.Contains(strings.ToUpper(target), "%2F") || strings.Contains(strings.ToUpper(target), "%5C") && opts.EscapedSlashes == KeepEscapedSlashes {
				continue // an encoded slash stays data: "/admin%2Fusers" is one segment
			}
			if path != "/admin" && !strings.HasPrefix(path, "/admin/") {
				t.Errorf("%+v: %q normalizes to %q, outside /admin", opts, target, path)
			}
		}
	}
}

// AdminTricks reads testdata/admin-tricks.txt.
func AdminTricks(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/admin-tricks.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "# ") || line == "#" {
			continue
		}
		out = append(out, line)
	}
	return out
}

func BenchmarkNormalizePath(b *testing.B) {
	for _, target := range []string{"/api/v1/users/42?verbose=1", "/api//v1/./users/%61?x"} {
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _, _, _ = NormalizePath(target, defaultOpts)
			}
		})
	}
}

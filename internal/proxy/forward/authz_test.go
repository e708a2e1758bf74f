package forward

import (
	"bufio"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"trellis.dev/trellis/internal/proxy/authz"
)

func TestNormalizeRequest(t *testing.T) {
	opts := authz.PathOptions{MergeSlashes: true, EscapedSlashes: authz.KeepEscapedSlashes}
	type got struct{ Path, RawPath, EscapedPath, RawQuery, RequestURI string }
	tests := []struct {
		name   string
		method string
		target string
		want   got
		bad    bool
	}{
		{"unchanged", "GET", "/a/b?x=1", got{"/a/b", "", "/a/b", "x=1", "/a/b?x=1"}, false},
		{"dot segments", "GET", "/a/../b//c?x", got{"/b/c", "", "/b/c", "x", "/b/c?x"}, false},
		{"fragment", "GET", "/a?q#f", got{"/a", "", "/a", "q", "/a?q"}, false},
		{"kept escaped slash", "GET", "/a%2fb", got{"/a/b", "/a%2Fb", "/a%2Fb", "", "/a%2Fb"}, false},
		{"absolute form", "GET", "http://echo:8080/x/./y?z", got{"/x/y", "", "/x/y", "z", "/x/y?z"}, false},
		{"absolute form without path", "GET", "http://echo:8080", got{"/", "", "/", "", "/"}, false},
		{"options star", "OPTIONS", "*", got{"*", "", "*", "", "*"}, false},
		{"encoded NUL", "GET", "/a%00", got{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tt.method + " " + tt.target + " HTTP/1.1\r\nHost: echo:8080\r\n\r\n")))
			if err != nil {
				t.Fatal(err)
			}
			err = normalize(r, opts)
			if tt.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := got{r.URL.Path, r.URL.RawPath, r.URL.EscapedPath(), r.URL.RawQuery, r.RequestURI}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

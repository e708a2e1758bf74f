package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"trellis.dev/trellis/internal/names"
	"trellis.dev/trellis/internal/proxy/internal/strmatch/strmatchtest"
)

// golden is one per-proxy output of the control plane's golden tests, read as data
// (the sidecar imports no control-plane package), with the trust bundle the control
// plane always adds.
type golden struct {
	name string
	res  Resources
}

// loadGoldens reads every per-proxy golden of the control plane.
func loadGoldens(tb testing.TB) []golden {
	tb.Helper()
	files, _ := filepath.Glob("../../xdsgen/testdata/*/*.json")
	slices.Sort(files)
	var out []golden
	for _, f := range files {
		var doc struct {
			Resources *struct {
				Listeners, Routes, Clusters, Endpoints, Secrets []json.RawMessage
			} `json:"resources"`
		}
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(data, &doc); err != nil || doc.Resources == nil {
			continue
		}
		res := Resources{
			Listeners: decodeAll[*listenerv3.Listener](tb, doc.Resources.Listeners),
			Routes:    decodeAll[*routev3.RouteConfiguration](tb, doc.Resources.Routes),
			Clusters:  decodeAll[*clusterv3.Cluster](tb, doc.Resources.Clusters),
			Endpoints: decodeAll[*endpointv3.ClusterLoadAssignment](tb, doc.Resources.Endpoints),
			Secrets:   decodeAll[*tlsv3.Secret](tb, doc.Resources.Secrets),
		}
		if _, ok := res.Secrets[names.RootCASecret]; !ok {
			res.Secrets[names.RootCASecret] = &tlsv3.Secret{Name: names.RootCASecret}
		}
		out = append(out, golden{name: f, res: res})
	}
	if len(out) == 0 {
		tb.Fatal("no control-plane golden files")
	}
	return out
}

// FuzzApply feeds any resource bytes to the sidecar as an xDS response would: an Any
// of one of the five types, decoded, then validated with the rest of its type (the
// complete set a SotW response makes current) and built with a full configuration
// taken from a control-plane golden. Each step may refuse (a NACK, with an error that
// names the resource), none may panic, and a table that builds must be usable: every
// listener's routes are looked up for a request.
//
// The seeds are the largest resource of each type of one sidecar of every golden
// case (internal/xdsgen/testdata), marshaled, and the committed corpus in
// testdata/fuzz/FuzzApply. which picks the golden and the type.
func FuzzApply(f *testing.F) {
	bases := loadGoldens(f)
	cases := map[string]bool{}
	for i, b := range bases {
		c := filepath.Dir(b.name)
		if cases[c] {
			continue // one sidecar per golden case
		}
		cases[c] = true
		for ti, typeURL := range Types {
			// The largest resource of each type of each golden: enough to reach every
			// parser, few enough for the baseline of a 5s run.
			var seed []byte
			for _, m := range b.res.of(typeURL) {
				data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
				if err != nil {
					f.Fatal(err)
				}
				if len(data) > len(seed) {
					seed = data
				}
			}
			if seed != nil {
				f.Add(uint16(i*len(Types)+ti), seed)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint16, data []byte) {
		base := bases[int(which)/len(Types)%len(bases)]
		typeURL := Types[int(which)%len(Types)]
		m, err := (&anypb.Any{TypeUrl: typeURL, Value: data}).UnmarshalNew()
		if err != nil {
			return // the xDS client NACKs what does not decode
		}
		name := ResourceName(m)
		if name == "" {
			return // the xDS client NACKs a resource without a name
		}
		res := base.res.clone()
		res.set(typeURL, name, m)
		if err := Validate(typeURL, res.of(typeURL)); err != nil {
			var re *Error
			if !errors.As(err, &re) || re.Name == "" || re.Msg == "" {
				t.Fatalf("Validate refused without naming the resource and the problem: %v", err)
			}
			return
		}
		table, err := Build(res)
		if err != nil {
			var re *Error
			if !errors.Is(err, ErrUnresolved) && (!errors.As(err, &re) || re.Name == "" || re.Msg == "") {
				t.Fatalf("Build refused without naming the resource and the problem: %v", err)
			}
			return
		}
		exercise(t, table)
	})
}

// exercise looks up a request on every HTTP listener of a table.
func exercise(t *testing.T, table *Table) {
	r, err := http.NewRequest("GET", "http://app:8080/a/b?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("X-User", "u")
	for _, l := range table.Listeners {
		for _, c := range l.Chains {
			if c.Routes == nil {
				continue
			}
			for _, vh := range c.Routes.VirtualHosts {
				if route := vh.Route(r); route != nil {
					_ = route.Match.MatchedPrefixLen(r.URL.Path)
				}
			}
			_ = c.Routes.VirtualHost(r.Host)
		}
	}
}

func (r Resources) of(typeURL string) map[string]proto.Message {
	switch typeURL {
	case ListenerType:
		return generic(r.Listeners)
	case RouteType:
		return generic(r.Routes)
	case ClusterType:
		return generic(r.Clusters)
	case EndpointType:
		return generic(r.Endpoints)
	case SecretType:
		return generic(r.Secrets)
	}
	return nil
}

func (r Resources) clone() Resources {
	return Resources{
		Listeners: cloneMap(r.Listeners), Routes: cloneMap(r.Routes), Clusters: cloneMap(r.Clusters),
		Endpoints: cloneMap(r.Endpoints), Secrets: cloneMap(r.Secrets),
	}
}

func cloneMap[T any](m map[string]T) map[string]T {
	out := make(map[string]T, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// set adds or replaces one resource; m's type is that of typeURL (UnmarshalNew made it).
func (r *Resources) set(typeURL, name string, m proto.Message) {
	switch typeURL {
	case ListenerType:
		r.Listeners[name] = m.(*listenerv3.Listener)
	case RouteType:
		r.Routes[name] = m.(*routev3.RouteConfiguration)
	case ClusterType:
		r.Clusters[name] = m.(*clusterv3.Cluster)
	case EndpointType:
		r.Endpoints[name] = m.(*endpointv3.ClusterLoadAssignment)
	case SecretType:
		r.Secrets[name] = m.(*tlsv3.Secret)
	}
}

// FuzzRouteMatch compiles a route's path and header match and checks what the
// compiled route decides against the definition of Envoy's matchers: prefix and exact
// paths compare bytes (ASCII case folded when case_sensitive is false), a safe_regex
// must be valid RE2 and match the whole path, and a header's StringMatcher is exact,
// prefix, suffix, contains (ASCII case folded when ignore_case) or a whole-value
// regex. The request path and header value are any bytes the HTTP server accepts.
func FuzzRouteMatch(f *testing.F) {
	for _, s := range []struct {
		pathKind, strKind uint8
		path              string
		caseSensitive     bool
		value             string
		ignoreCase        bool
		target, header    string
	}{
		{0, 0, "/api/", true, "v1", false, "/api/x", "v1"},
		{1, 1, "/Admin", false, "Bear", true, "/admin", "bearer x"},
		{2, 4, "/users/[0-9]+", true, "a|b", false, "/users/42", "b"},
		{2, 4, "a)|(b", true, "x)|(y", false, "/abc", "xyz"},
		{0, 2, "/", false, "SRE", true, "/", "\u017fre"},
		{1, 0, "/k", false, "k", true, "/\u212a", "\u212a"},
		{0, 3, "/%2F", true, "adm", true, "/%2f", "ADMIN"},
		{2, 4, `\Qa.b`, true, `(?i)x`, false, "/a.b", "X"},
	} {
		f.Add(s.pathKind, s.strKind, s.path, s.caseSensitive, s.value, s.ignoreCase, s.target, s.header)
	}
	f.Fuzz(func(t *testing.T, pathKind, strKind uint8, path string, caseSensitive bool, value string, ignoreCase bool, target, header string) {
		m := &routev3.RouteMatch{CaseSensitive: wrapperspb.Bool(caseSensitive)}
		switch pathKind % 3 {
		case 0:
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: path}
		case 1:
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: path}
		case 2:
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: path}}
		}
		sm := strmatchtest.Matcher(strKind, value, ignoreCase)
		m.Headers = []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}}

		pathRegexValid := pathKind%3 != 2 || strmatchtest.ValidRegex(path)
		valueRegexValid := strKind%strmatchtest.Kinds != strmatchtest.Regex || strmatchtest.ValidRegex(value)
		compiled, err := parseRouteMatch(m)
		if err != nil {
			if pathRegexValid && valueRegexValid {
				t.Fatalf("valid match refused: %v", err)
			}
			return
		}
		if !pathRegexValid || !valueRegexValid {
			t.Fatalf("invalid RE2 accepted: path %q, value %q", path, value)
		}

		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: app\r\nX-User: " + header + "\r\n\r\n")))
		if err != nil {
			return // the HTTP server refuses it before any route is matched
		}
		p := requestPath(r)
		// A path match is a StringMatcher on the path: prefix, exact or regex.
		want := strmatchtest.Match([...]uint8{1, 0, strmatchtest.Regex}[pathKind%3], path, !caseSensitive, p)
		got := compiled.matchPath(p)
		if got != want {
			t.Fatalf("path match %d %q (case sensitive %v) on %q: got %v, want %v", pathKind%3, path, caseSensitive, p, got, want)
		}
		// Several values of a header are matched joined with ",", as Envoy does.
		vs := r.Header.Values("X-User")
		hv := strings.Join(vs, ",")
		headerOK := len(vs) > 0 && strmatchtest.Match(strKind, value, ignoreCase, hv)
		if got := len(vs) > 0 && compiled.Headers[0].String.Match(hv); got != headerOK {
			t.Fatalf("string match %d %q (ignore case %v) on %q: got %v, want %v", strKind%strmatchtest.Kinds, value, ignoreCase, hv, got, headerOK)
		}
		if got, want := compiled.Matches(r), want && headerOK; got != want {
			t.Fatalf("route match on %q: got %v, want %v", target, got, want)
		}
	})
}

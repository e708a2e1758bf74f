package runtime

import (
	"fmt"
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/proto"
)

// Protocol detection (docs/xds.md, "Protocol detection"): a listener with the HTTP
// inspector tells HTTP/1.x and HTTP/2 with prior knowledge from anything else on a
// plaintext connection; over TLS the negotiated ALPN is the application protocol.
// Filter chains then match filter_chain_match.application_protocols.

// HTTPInspectorFilter is the listener filter that detects HTTP.
const HTTPInspectorFilter = "envoy.filters.listener.http_inspector"

// Application protocols a filter chain can match: what the HTTP inspector reports
// (AppHTTP11, AppH2C) and the ALPN of a TLS connection (AppHTTP11, AppH2). A
// connection that is none of them has no application protocol ("").
const (
	AppHTTP11 = "http/1.1"
	AppH2C    = "h2c"
	AppH2     = "h2"
)

// maxChains bounds a listener's filter chains: two transport protocols times HTTP or
// not.
const maxChains = 4

// parseApplicationProtocols checks a chain's application_protocols. A chain that
// matches some must match HTTP/1.1 and one spelling of HTTP/2, since an HTTP chain
// serves both (and Listener.Chain finds it by HTTP/1.1).
func parseApplicationProtocols(apps []string) ([]string, error) {
	if len(apps) == 0 {
		return nil, nil
	}
	for i, a := range apps {
		switch a {
		case AppHTTP11, AppH2C, AppH2:
		default:
			return nil, fieldErrorf(fmt.Sprintf("[%d]", i), "%q is not supported (want %q, %q or %q)", a, AppHTTP11, AppH2C, AppH2)
		}
	}
	if !slices.Contains(apps, AppHTTP11) || !(slices.Contains(apps, AppH2C) || slices.Contains(apps, AppH2)) {
		return nil, fieldErrorf("", "must hold %q and %q or %q (an HTTP chain serves both versions), not %q", AppHTTP11, AppH2C, AppH2, apps)
	}
	return slices.Clone(apps), nil
}

// parseHTTPInspector checks the HTTP inspector's config: it has no fields.
func parseHTTPInspector(lf *listenerv3.ListenerFilter) error {
	tc := lf.GetTypedConfig()
	if tc == nil {
		return nil
	}
	cfg := &httpinspectorv3.HttpInspector{}
	if err := unpack(tc, cfg); err != nil {
		return prefixed("typed_config", err)
	}
	if err := checkFields(cfg.ProtoReflect(), fields()); err != nil {
		return prefixed("typed_config", err)
	}
	return nil
}

// matchKey identifies the connections a chain takes, to refuse two chains that take
// the same ones.
func (cs *chainSpec) matchKey() string {
	apps := slices.Clone(cs.apps)
	slices.Sort(apps)
	return cs.proto + "|" + strings.Join(apps, ",")
}

// checkDetection checks what protocol detection needs: chains that differ only by
// application protocols share their transport socket (TLS is terminated before the
// application protocol is known), and a plaintext chain matching application
// protocols needs the HTTP inspector (without it, nothing would ever match).
func checkDetection(chains []*listenerv3.FilterChain, spec *listenerSpec) error {
	for i, cs := range spec.chains {
		if len(cs.apps) > 0 && cs.proto != TransportTLS && !spec.detect {
			return fieldErrorf(fmt.Sprintf("filter_chains[%d].filter_chain_match.application_protocols", i),
				"needs the listener filter %s", HTTPInspectorFilter)
		}
		for j := range i {
			if spec.chains[j].proto == cs.proto && !proto.Equal(chains[j].GetTransportSocket(), chains[i].GetTransportSocket()) {
				return fieldErrorf(fmt.Sprintf("filter_chains[%d].transport_socket", i),
					"must equal filter_chains[%d].transport_socket: chains of one transport protocol share it", j)
			}
		}
	}
	return nil
}

// ChainFor returns the filter chain for a connection of the given transport (a TLS
// ClientHello or not) and application protocol (AppHTTP11, AppH2C, AppH2, or "" for
// none), as Envoy matches them: the transport protocol first (an exact match before a
// chain matching any), then the application protocol (a chain listing it before a
// chain listing none). Nil: no chain takes the connection (it is refused).
func (l *Listener) ChainFor(isTLS bool, app string) *FilterChain {
	want := TransportRaw
	if isTLS {
		want = TransportTLS
	}
	var best *FilterChain
	bestScore := -1
	for _, c := range l.Chains {
		score := 0
		switch c.TransportProtocol {
		case want:
			score = 4
		case "":
			score = 2
		default:
			continue
		}
		switch {
		case len(c.ApplicationProtocols) == 0:
		case app != "" && slices.Contains(c.ApplicationProtocols, app):
			score++
		default:
			continue
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

package runtime

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/proxy/internal/xdstest"
)

// detectingListener is an inbound listener of a detected port in mode: each chain of
// the HTTP listener followed by the same chain with the TCP proxy, the HTTP chains
// matching application protocols, and the HTTP inspector.
func detectingListener(mode xdstest.Mode) *listenerv3.Listener {
	l := xdstest.InboundHTTPListener("inbound|80", "127.0.0.1:15006", mode, "cluster.local", inboundRC())
	tcp := xdstest.InboundTCPListener("inbound|80", "127.0.0.1:15006", mode, "cluster.local", "inbound|80||")
	var chains []*listenerv3.FilterChain
	for i, fc := range l.FilterChains {
		other := tcp.FilterChains[i]
		other.TransportSocket = proto.Clone(fc.TransportSocket).(*corev3.TransportSocket)
		if other.Name != "" {
			other.Name += "-tcp"
		}
		if fc.FilterChainMatch == nil {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{}
		}
		fc.FilterChainMatch.ApplicationProtocols = []string{AppHTTP11, AppH2C}
		if fc.FilterChainMatch.TransportProtocol == TransportTLS {
			fc.FilterChainMatch.ApplicationProtocols = []string{AppHTTP11, AppH2}
		}
		chains = append(chains, fc, other)
	}
	l.FilterChains = chains
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: HTTPInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: xdstest.MustAny(&httpinspectorv3.HttpInspector{})}})
	return l
}

func TestValidateDetection(t *testing.T) {
	tests := []struct {
		name string
		res  func() proto.Message
		want string // substring of the error; "" for valid
	}{
		{name: "plaintext", res: func() proto.Message { return detectingListener(xdstest.Disable) }},
		{name: "permissive", res: func() proto.Message { return detectingListener(xdstest.Permissive) }},
		{name: "strict", res: func() proto.Message { return detectingListener(xdstest.Strict) }},
		{
			name: "unknown application protocol",
			res: func() proto.Message {
				l := detectingListener(xdstest.Disable)
				l.FilterChains[0].FilterChainMatch.ApplicationProtocols = []string{"http/1.1", "spdy/3"}
				return l
			},
			want: `filter_chains[0].filter_chain_match.application_protocols[1]: "spdy/3" is not supported`,
		},
		{
			name: "HTTP chain without HTTP/2",
			res: func() proto.Message {
				l := detectingListener(xdstest.Disable)
				l.FilterChains[0].FilterChainMatch.ApplicationProtocols = []string{"http/1.1"}
				return l
			},
			want: `filter_chains[0].filter_chain_match.application_protocols: must hold "http/1.1" and "h2c" or "h2"`,
		},
		{
			name: "application protocols without the HTTP inspector",
			res: func() proto.Message {
				l := detectingListener(xdstest.Disable)
				l.ListenerFilters = nil
				return l
			},
			want: `filter_chains[0].filter_chain_match.application_protocols: needs the listener filter envoy.filters.listener.http_inspector`,
		},
		{
			name: "two chains for the same connections",
			res: func() proto.Message {
				l := detectingListener(xdstest.Disable)
				l.FilterChains[1].FilterChainMatch = &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"h2c", "http/1.1"}}
				return l
			},
			want: `filter_chains[1].filter_chain_match: matches the same connections as filter_chains[0]`,
		},
		{
			name: "chains of one transport with different TLS",
			res: func() proto.Message {
				l := detectingListener(xdstest.Strict)
				l.FilterChains[1].TransportSocket = nil
				return l
			},
			want: `filter_chains[1].transport_socket: is required`,
		},
		{
			name: "five chains",
			res: func() proto.Message {
				l := detectingListener(xdstest.Permissive)
				l.FilterChains = append(l.FilterChains, l.FilterChains[0])
				return l
			},
			want: `filter_chains: must hold at most 4 filter chains`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(ListenerType, one(tt.res()))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestChainFor(t *testing.T) {
	chain := func(name, transport string, apps ...string) *FilterChain {
		return &FilterChain{Name: name, TransportProtocol: transport, ApplicationProtocols: apps}
	}
	permissive := &Listener{Chains: []*FilterChain{
		chain("tls", TransportTLS, AppHTTP11, AppH2), chain("tls-tcp", TransportTLS),
		chain("plaintext", TransportRaw, AppHTTP11, AppH2C), chain("plaintext-tcp", TransportRaw),
	}}
	plain := &Listener{Chains: []*FilterChain{chain("http", "", AppHTTP11, AppH2C), chain("tcp", "")}}
	strict := &Listener{Chains: []*FilterChain{chain("tls", TransportTLS, AppHTTP11, AppH2), chain("tls-tcp", TransportTLS)}}
	legacy := &Listener{Chains: []*FilterChain{chain("tls", TransportTLS), chain("any", "")}}
	tests := []struct {
		name  string
		l     *Listener
		isTLS bool
		app   string
		want  string // chain name; "" for none
	}{
		{name: "plaintext HTTP/1.1", l: permissive, app: AppHTTP11, want: "plaintext"},
		{name: "plaintext h2c", l: permissive, app: AppH2C, want: "plaintext"},
		{name: "plaintext other", l: permissive, app: "", want: "plaintext-tcp"},
		{name: "TLS h2", l: permissive, isTLS: true, app: AppH2, want: "tls"},
		{name: "TLS no ALPN", l: permissive, isTLS: true, want: "tls-tcp"},
		{name: "TLS h2c is not an ALPN", l: permissive, isTLS: true, app: AppH2C, want: "tls-tcp"},
		{name: "any transport, HTTP", l: plain, app: AppHTTP11, want: "http"},
		{name: "any transport, other", l: plain, want: "tcp"},
		{name: "strict refuses plaintext", l: strict, app: AppHTTP11, want: ""},
		{name: "exact transport before any", l: legacy, isTLS: true, want: "tls"},
		{name: "any transport when no exact one", l: legacy, app: AppHTTP11, want: "any"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if c := tt.l.ChainFor(tt.isTLS, tt.app); c != nil {
				got = c.Name
			}
			if got != tt.want {
				t.Errorf("ChainFor(%v, %q) = %q, want %q", tt.isTLS, tt.app, got, tt.want)
			}
		})
	}
}

package xdsgen

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// HTTPInspector is the listener filter that detects HTTP/1.x and HTTP/2 (h2c) on a
// plaintext connection (docs/xds.md, "Protocol detection").
const HTTPInspector = "envoy.filters.listener.http_inspector"

// HTTPApplicationProtocols are the application protocols the plaintext HTTP chain of
// a detected port matches: what the HTTP inspector reports for HTTP/1.x and HTTP/2
// with prior knowledge. TLSHTTPApplicationProtocols are the TLS chain's: the ALPN a
// client sidecar negotiates (a TCP proxy offers none).
var (
	HTTPApplicationProtocols    = []string{"http/1.1", "h2c"}
	TLSHTTPApplicationProtocols = []string{"http/1.1", "h2"}
)

// TCPChainSuffix is appended to the name of the chain that carries, as TCP, the
// connections of a detected port that are not HTTP.
const TCPChainSuffix = "-tcp"

// chainFilters makes the network filters of one chain; over TLS an HTTP connection
// manager sets XFCC from the mutual TLS peer.
type chainFilters func(xfcc hcmv3.HttpConnectionManager_ForwardClientCertDetails) []*listenerv3.Filter

// detectProtocol turns the inbound listener l of an AUTO port, whose chains hold HTTP
// connection managers, into a listener that detects the protocol: the HTTP inspector
// joins its listener filters, and each chain is split in two with the same
// transport_protocol and transport socket: the HTTP chain matching
// HTTPApplicationProtocols (TLSHTTPApplicationProtocols on a TLS chain), then a chain matching no application protocol whose
// filters tcp makes (everything else, as TCP).
func detectProtocol(l *listenerv3.Listener, tcp chainFilters) {
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{
		Name:       HTTPInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&httpinspectorv3.HttpInspector{})},
	})
	var chains []*listenerv3.FilterChain
	for _, fc := range l.FilterChains {
		other := proto.Clone(fc).(*listenerv3.FilterChain)
		if other.Name != "" {
			other.Name += TCPChainSuffix
		}
		other.Filters = tcp(hcmv3.HttpConnectionManager_SANITIZE)
		if fc.FilterChainMatch == nil {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{}
		}
		apps := HTTPApplicationProtocols
		if fc.FilterChainMatch.TransportProtocol == TransportTLS {
			apps = TLSHTTPApplicationProtocols
		}
		fc.FilterChainMatch.ApplicationProtocols = append([]string(nil), apps...)
		chains = append(chains, fc, other)
	}
	l.FilterChains = chains
}

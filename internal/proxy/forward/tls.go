package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"trellis.dev/trellis/internal/proxy/stats"
)

// dialFunc dials an upstream connection.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// errNoTLSConfig fails the connections of a cluster whose TLS settings could not be
// turned into a configuration (files that cannot be read).
var errNoTLSConfig = errors.New("the cluster has no usable TLS configuration")

// tlsDial wraps dial with a TLS handshake under cfg (SNI, ALPN, the sidecar's
// certificate, the server's verification), bounded by timeout. A failed handshake is
// a connect failure (UF), as in Envoy.
func tlsDial(dial dialFunc, cfg *tls.Config, timeout time.Duration, ctr *stats.Counters) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if cfg == nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errNoTLSConfig}
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(hctx); err != nil {
			ctr.SSLErrors.Add(1)
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: c.RemoteAddr(), Err: fmt.Errorf("TLS handshake: %w", err)}
		}
		ctr.SSLHandshakes.Add(1)
		return tc, nil
	}
}

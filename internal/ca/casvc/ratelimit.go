package casvc

import (
	"net"
	"sync"

	"golang.org/x/time/rate"
)

// Defaults of the certificate-request rate limit: per peer address, a burst of
// DefaultCSRBurst then DefaultCSRRate per second. A sidecar asks at start and at
// half its certificate's lifetime; in local mode every sidecar shares 127.0.0.1.
const (
	DefaultCSRRate  = 10
	DefaultCSRBurst = 50
)

// maxPeers bounds the peers the limiter remembers; beyond, peers whose bucket is
// full again are forgotten, and a new peer is refused while none is.
const maxPeers = 16384

// peerLimiter is a token bucket per peer IP, checked before the caller is
// authenticated, so that a flood costs neither a TokenReview nor a signature.
type peerLimiter struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex
	peers map[string]*rate.Limiter
}

func newPeerLimiter(perSecond float64, burst int) *peerLimiter {
	if perSecond <= 0 {
		perSecond = DefaultCSRRate
	}
	if burst <= 0 {
		burst = DefaultCSRBurst
	}
	return &peerLimiter{rate: rate.Limit(perSecond), burst: burst, peers: map[string]*rate.Limiter{}}
}

// allow takes a token from the bucket of addr's IP.
func (l *peerLimiter) allow(addr string) bool {
	key := addr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		key = host
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.peers[key]
	if b == nil {
		if len(l.peers) >= maxPeers {
			for k, v := range l.peers {
				if v.Tokens() >= float64(l.burst) {
					delete(l.peers, k)
				}
			}
			if len(l.peers) >= maxPeers {
				return false
			}
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.peers[key] = b
	}
	return b.Allow()
}

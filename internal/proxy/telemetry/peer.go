package telemetry

import (
	"net/url"
	"strings"
	"sync"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// The x-trellis-peer header (reqinfo.PeerHeader) is the client workload's name,
// namespace, app and version, each query-escaped, joined with ",":
// "reviews-v2,default,reviews,v2". Values past the fourth are ignored, so fields can
// be added later.

// maxPeerHeader bounds the header value that is decoded.
const maxPeerHeader = 512

// EncodePeer is the x-trellis-peer value of a workload (its principal is not sent:
// it comes from the peer's certificate).
func EncodePeer(p reqinfo.Peer) string {
	return url.QueryEscape(p.Workload) + "," + url.QueryEscape(p.Namespace) + "," +
		url.QueryEscape(p.App) + "," + url.QueryEscape(p.Version)
}

// DecodePeer decodes an x-trellis-peer value; ok is false when it is malformed.
func DecodePeer(v string) (p reqinfo.Peer, ok bool) {
	if v == "" || len(v) > maxPeerHeader {
		return p, false
	}
	fields := strings.SplitN(v, ",", 5)
	if len(fields) < 4 {
		return p, false
	}
	dst := []*string{&p.Workload, &p.Namespace, &p.App, &p.Version}
	for i, d := range dst {
		s, err := url.QueryUnescape(fields[i])
		if err != nil {
			return reqinfo.Peer{}, false
		}
		*d = s
	}
	return p, true
}

// peerCache keeps the decoded peers by header value, so that a request from a known
// client costs a map lookup. It is cleared when full.
type peerCache struct {
	mu    sync.RWMutex
	peers map[string]*reqinfo.Peer
}

const maxCachedPeers = 1024

func (c *peerCache) get(v string) *reqinfo.Peer {
	c.mu.RLock()
	p, ok := c.peers[v]
	c.mu.RUnlock()
	if ok {
		return p
	}
	if decoded, ok := DecodePeer(v); ok {
		p = &decoded
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peers == nil || len(c.peers) >= maxCachedPeers {
		c.peers = map[string]*reqinfo.Peer{}
	}
	c.peers[strings.Clone(v)] = p
	return p
}

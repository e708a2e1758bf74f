package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"trellis.dev/trellis/internal/proxy/runtime"
)

// Config configures a Client.
type Config struct {
	// Server is the management server's address (host:port).
	Server string
	// Conn, if set, is the connection to the server (TLS, shared with the CA client);
	// the client uses it and does not close it. Otherwise Run dials Server in
	// plaintext.
	Conn *grpc.ClientConn
	// Node identifies the proxy; it is sent in the first request of every stream.
	Node *corev3.Node
	// ServingNode, if set, is sent instead of Node on a stream opened while Serving
	// reports true: the same node, saying that the proxy's listeners already serve.
	ServingNode *corev3.Node
	Serving     func() bool
	// Delta selects the incremental protocol instead of State of the World.
	Delta bool
	// Metadata, if set, is sent with every stream: the sidecar's credentials, for a
	// control plane that authenticates its xDS clients.
	Metadata metadata.MD
	// Handler validates and applies what the server sends.
	Handler Handler
	// Logger receives connection changes and rejected updates.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the delay before reconnecting after a stream
	// breaks; the delay doubles from MinBackoff, with full jitter. Defaults 100ms, 15s.
	MinBackoff, MaxBackoff time.Duration
}

// Handler is the client's consumer. The client calls it from Run's goroutine only,
// one call at a time.
type Handler interface {
	// Apply validates the complete new set of resources of one type and, if it is
	// valid, makes it current. An error rejects the response (NACK) and must leave
	// the handler's state as it was; its text goes to the server as error_detail.
	Apply(u Update) error
	// Wants returns the names of the resources of a named (non-wildcard) type, route
	// configurations or load assignments, that the current state refers to.
	Wants(typeURL string) []string
}

// Update is the complete set of resources of one type that a response makes current.
type Update struct {
	TypeURL string
	// Version is the response's version_info (SotW) or system_version_info (Delta).
	Version string
	// Resources by name.
	Resources map[string]Resource
}

// Resource is one accepted resource.
type Resource struct {
	// Version is the resource's version: the response version in SotW, the resource's
	// own in Delta.
	Version string
	Message proto.Message
}

// Counts are the updates of one type accepted and rejected since start.
type Counts struct{ Accepted, Rejected uint64 }

// Client is an ADS client. Run owns all of its protocol state; Connected and Counts
// may be called from any goroutine.
type Client struct {
	cfg   Config
	types []*typeState // in subscription order: LDS, CDS, RDS, EDS
	byURL map[string]*typeState

	connected atomic.Bool
}

// typeState is what the client knows of one resource type. Owned by Run's goroutine,
// except the counters.
type typeState struct {
	typeURL  string
	wildcard bool
	names    []string // subscribed names of a named type, sorted

	version   string              // last accepted version (SotW ACKs)
	resources map[string]Resource // last accepted resources
	nonce     string              // nonce of the last response on the current stream

	rejectedVersion string        // version of the last rejected response
	nackDelay       time.Duration // delay before repeating a NACK of the same version

	accepted, rejected atomic.Uint64
}

// New returns a client; Run starts it.
func New(cfg Config) (*Client, error) {
	if cfg.Server == "" {
		return nil, errors.New("xds client: no server address")
	}
	if cfg.Handler == nil || cfg.Logger == nil || cfg.Node == nil {
		return nil, errors.New("xds client: Handler, Logger and Node are required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(15*time.Second, cfg.MinBackoff)
	}
	c := &Client{cfg: cfg, byURL: map[string]*typeState{}}
	for _, tu := range runtime.Types {
		wildcard := tu == runtime.ListenerType || tu == runtime.ClusterType
		t := &typeState{typeURL: tu, wildcard: wildcard, resources: map[string]Resource{}}
		c.byURL[tu] = t
	}
	// Listeners and clusters first: they name the routes and endpoints to ask for.
	// The trust bundle before the clusters, whose TLS settings refer to it.
	c.types = []*typeState{c.byURL[runtime.ListenerType], c.byURL[runtime.SecretType], c.byURL[runtime.ClusterType],
		c.byURL[runtime.RouteType], c.byURL[runtime.EndpointType]}
	return c, nil
}

// Connected reports whether a stream to the server is open.
func (c *Client) Connected() bool { return c.connected.Load() }

// Counts returns the accepted and rejected updates of one type.
func (c *Client) Counts(typeURL string) Counts {
	t := c.byURL[typeURL]
	if t == nil {
		return Counts{}
	}
	return Counts{Accepted: t.accepted.Load(), Rejected: t.rejected.Load()}
}

// Run keeps an ADS stream to the server open until ctx is done, reconnecting with
// backoff when it breaks. What was accepted stays applied while disconnected. It
// returns nil when ctx ends, or an error if the client cannot be set up.
func (c *Client) Run(ctx context.Context) error {
	conn := c.cfg.Conn
	if conn == nil {
		var err error
		conn, err = Dial(c.cfg.Server, insecure.NewCredentials(), c.cfg.MinBackoff, c.cfg.MaxBackoff)
		if err != nil {
			return err
		}
		defer conn.Close()
	}
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	delay := c.cfg.MinBackoff
	for {
		progressed, err := c.session(ctx, ads)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			delay = c.cfg.MinBackoff
		}
		wait := time.Duration(rand.Int64N(int64(delay))) + time.Millisecond
		c.cfg.Logger.Warn("xDS stream ended; reconnecting", "server", c.cfg.Server, "error", err, "in", wait.Round(time.Millisecond))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		delay = min(delay*2, c.cfg.MaxBackoff)
	}
}

// resubscribe asks the handler what the accepted state refers to and updates the
// subscriptions of the named types that changed. Resources no longer wanted are
// dropped (and the handler told), as the protocol leaves their removal to the client.
func (c *Client) resubscribe(s stream) error {
	for _, t := range c.types {
		if t.wildcard {
			continue
		}
		names := slices.Clone(c.cfg.Handler.Wants(t.typeURL))
		slices.Sort(names)
		names = slices.Compact(names)
		if slices.Equal(names, t.names) {
			continue
		}
		old := t.names
		t.names = names
		if c.prune(t) {
			if err := c.cfg.Handler.Apply(Update{TypeURL: t.typeURL, Version: t.version, Resources: t.resources}); err != nil {
				c.cfg.Logger.Warn("applying unsubscription", "type", t.typeURL, "error", err)
			}
		}
		if len(old) == 0 && len(names) == 0 {
			continue
		}
		if err := s.subscribe(t); err != nil {
			return err
		}
	}
	return nil
}

// prune drops the resources of a named type that are no longer subscribed, and
// reports whether it dropped any.
func (c *Client) prune(t *typeState) bool {
	kept := map[string]Resource{}
	for name, r := range t.resources {
		if _, ok := slices.BinarySearch(t.names, name); ok {
			kept[name] = r
		}
	}
	if len(kept) == len(t.resources) {
		return false
	}
	t.resources = kept
	return true
}

func (t *typeState) wants(name string) bool {
	if t.wildcard {
		return true
	}
	_, ok := slices.BinarySearch(t.names, name)
	return ok
}

// Dial makes the gRPC connection to a control plane (no I/O until first use), with
// reconnection backoff between minBackoff and maxBackoff (defaults 100ms, 15s).
func Dial(server string, creds credentials.TransportCredentials, minBackoff, maxBackoff time.Duration) (*grpc.ClientConn, error) {
	if minBackoff <= 0 {
		minBackoff = 100 * time.Millisecond
	}
	if maxBackoff < minBackoff {
		maxBackoff = max(15*time.Second, minBackoff)
	}
	conn, err := grpc.NewClient("passthrough:///"+server,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  minBackoff,
				Multiplier: 2,
				Jitter:     0.2,
				MaxDelay:   maxBackoff,
			},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("creating xDS client for %s: %w", server, err)
	}
	return conn, nil
}

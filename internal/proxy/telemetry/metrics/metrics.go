package metrics

import (
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"trellis.dev/trellis/internal/proxy/reqinfo"
)

// Naming schemes (Config.Compat).
const (
	// CompatTrellis names the metrics trellis_*; the default.
	CompatTrellis = "trellis"
	// CompatIstio names them as Istio does (istio_requests_total, ...), so that
	// Istio's dashboards and Kiali read them unchanged.
	CompatIstio = "istio"
)

// DefaultMaxSeries bounds the distinct label sets of each family by default.
const DefaultMaxSeries = 1000

// Buckets of the histograms: milliseconds, and bytes.
var (
	DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}
	SizeBuckets     = []float64{1, 10, 100, 1000, 10000, 100000, 1e6, 1e7, 1e8}
)

// Config configures the metrics.
type Config struct {
	// Self is this sidecar's workload: the source of outbound requests, the
	// destination of inbound ones. Its Principal is empty when the sidecar has no
	// identity.
	Self reqinfo.Peer
	// Service is the FQDN of the service the workload declares, the
	// destination_service of an inbound request whose Host names no service; empty:
	// unknown.
	Service string
	// Compat is CompatTrellis (or empty) or CompatIstio.
	Compat string
	// MaxSeries bounds the distinct label sets of the request metrics, and of the TCP
	// metrics; zero means DefaultMaxSeries.
	MaxSeries int
}

// Metrics records requests and connections into Prometheus collectors.
type Metrics struct {
	cfg      Config
	registry *prometheus.Registry

	requests                      *prometheus.CounterVec
	duration, reqBytes, respBytes *prometheus.HistogramVec
	tcpOpened, tcpClosed          *prometheus.CounterVec
	tcpSent, tcpReceived          *prometheus.CounterVec
	overflowHTTP, overflowTCP     prometheus.Counter

	mu       sync.RWMutex
	http     map[httpKey]*httpSeries
	tcp      map[tcpKey]*tcpSeries
	httpSets map[string]bool // distinct label sets made, joined
	tcpSets  map[string]bool
}

var _ reqinfo.TCPRecorder = (*Metrics)(nil)

// New makes the collectors and registers them in a new registry (Registry).
func New(cfg Config) (*Metrics, error) {
	prefix := "trellis"
	switch cfg.Compat {
	case "", CompatTrellis:
	case CompatIstio:
		prefix = "istio"
	default:
		return nil, fmt.Errorf("metrics compatibility %q: want %q or %q", cfg.Compat, CompatTrellis, CompatIstio)
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = DefaultMaxSeries
	}
	m := &Metrics{
		cfg:      cfg,
		registry: prometheus.NewRegistry(),
		http:     map[httpKey]*httpSeries{},
		tcp:      map[tcpKey]*tcpSeries{},
		httpSets: map[string]bool{},
		tcpSets:  map[string]bool{},
	}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "_" + name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: prefix + "_" + name, Help: help, Buckets: buckets}, httpLabels)
	}
	m.requests = counter("requests_total", "Requests, by source, destination and response.", httpLabels)
	m.duration = histogram("request_duration_milliseconds", "Request durations in milliseconds, until the response ended.", DurationBuckets)
	m.reqBytes = histogram("request_bytes", "Request body sizes in bytes.", SizeBuckets)
	m.respBytes = histogram("response_bytes", "Response body sizes in bytes.", SizeBuckets)
	m.tcpOpened = counter("tcp_connections_opened_total", "TCP connections opened.", tcpLabels)
	m.tcpClosed = counter("tcp_connections_closed_total", "TCP connections closed.", tcpLabels)
	m.tcpSent = counter("tcp_sent_bytes_total", "Bytes sent to the downstream side of TCP connections, counted when they close.", tcpLabels)
	m.tcpReceived = counter("tcp_received_bytes_total", "Bytes received from the downstream side of TCP connections, counted when they close.", tcpLabels)
	overflow := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trellis_metrics_overflow_total",
		Help: "Requests and connections counted under the \"other\" label set because their family had reached its bound of distinct label sets.",
	}, []string{"family"})
	m.overflowHTTP = overflow.WithLabelValues("requests")
	m.overflowTCP = overflow.WithLabelValues("tcp")
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.reqBytes, m.respBytes,
		m.tcpOpened, m.tcpClosed, m.tcpSent, m.tcpReceived, overflow} {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// Registry is the registry holding the metrics, for the /stats/prometheus handler.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// LabelSets is how many distinct label sets the request and TCP metrics hold: what
// the size of the metrics page grows with (each request label set is three
// histograms and a counter, about 40 KB of text with Istio's labels).
func (m *Metrics) LabelSets() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.httpSets) + len(m.tcpSets)
}

// httpKey is what decides a request's label values.
type httpKey struct {
	inbound bool
	peer    *reqinfo.Peer
	// cluster decides the destination service of an outbound request, authority of
	// an inbound one.
	cluster, authority string
	code               int
	grpc               bool
	grpcStatus         int
	flags              reqinfo.Flags
	// principal is the authenticated peer's SPIFFE ID, empty without mutual TLS.
	principal string
}

// httpSeries are the child metrics of one label set.
type httpSeries struct {
	requests                      prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

// RecordHTTP counts a finished request.
func (m *Metrics) RecordHTTP(info *reqinfo.Info) {
	tm := &info.Telemetry
	k := httpKey{inbound: tm.Inbound, peer: tm.Peer, code: info.Code, grpc: tm.GRPC,
		grpcStatus: tm.GRPCStatus, flags: info.Flags, principal: peerPrincipal(info)}
	if tm.Inbound {
		k.authority = tm.Authority
	} else {
		k.cluster = info.Cluster
	}
	m.mu.RLock()
	s := m.http[k]
	m.mu.RUnlock()
	if s == nil {
		s = m.httpSeriesFor(k)
	}
	s.requests.Inc()
	s.duration.Observe(float64(info.Duration.Microseconds()) / 1000)
	s.reqBytes.Observe(float64(info.BytesReceived))
	s.respBytes.Observe(float64(info.BytesSent))
}

// peerPrincipal is the SPIFFE ID of the mutual TLS peer of an inbound request, empty
// when the connection was not mutual TLS.
func peerPrincipal(info *reqinfo.Info) string {
	if !info.Telemetry.Inbound {
		return ""
	}
	return info.PeerIdentity
}

func (m *Metrics) httpSeriesFor(k httpKey) *httpSeries {
	c := m.common(k.inbound, k.peer, k.principal, k.cluster, k.authority, k.flags)
	c.protocol = "http"
	if k.grpc {
		c.protocol = "grpc"
	}
	values := c.values(codeString(k.code), grpcString(k.grpc, k.grpcStatus), true)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.http[k]; s != nil {
		return s
	}
	if len(m.http) >= 4*m.cfg.MaxSeries {
		clear(m.http)
	}
	joined := strings.Join(values, "\x00")
	overflow := false
	if !m.httpSets[joined] {
		if len(m.httpSets) >= m.cfg.MaxSeries {
			values, overflow = overflowValues(k.inbound, c.protocol, true), true
		} else {
			m.httpSets[joined] = true
		}
	}
	s := &httpSeries{
		requests:  m.requests.WithLabelValues(values...),
		duration:  m.duration.WithLabelValues(values...),
		reqBytes:  m.reqBytes.WithLabelValues(values...),
		respBytes: m.respBytes.WithLabelValues(values...),
	}
	if overflow {
		// The key overflows for good (label sets are never forgotten): cache it too.
		s.requests = overflowCounter{s.requests, m.overflowHTTP}
	}
	m.http[k] = s
	return s
}

// overflowCounter counts into the "other" series and the overflow counter.
type overflowCounter struct {
	prometheus.Counter
	overflow prometheus.Counter
}

func (c overflowCounter) Inc() {
	c.Counter.Inc()
	c.overflow.Inc()
}

// common works out the label values both families share.
func (m *Metrics) common(inbound bool, peer *reqinfo.Peer, principal, cluster, authority string, flags reqinfo.Flags) common {
	c := common{inbound: inbound, flags: flags.String()}
	self := m.cfg.Self
	if inbound {
		src := reqinfo.Peer{Principal: principal}
		if peer != nil {
			src = *peer
			src.Principal = principal
		}
		c.src, c.dst = &src, &self
		c.service, c.serviceName, c.serviceNS = serviceOfAuthority(authority, self.Namespace, m.cfg.Service)
		c.policy = policyNone
		if principal != "" {
			c.policy = policyMTLS
		}
		return c
	}
	c.src, c.dst = &self, peer
	c.service, c.serviceName, c.serviceNS = serviceOfCluster(cluster)
	c.policy = unknown
	return c
}

// tcpKey is what decides a connection's label values.
type tcpKey struct {
	inbound   bool
	peer      *reqinfo.Peer
	cluster   string
	flags     reqinfo.Flags
	principal string
}

type tcpSeries struct {
	opened, closed, sent, received prometheus.Counter
	overflow                       bool
}

// TCPOpened counts a connection opened.
func (m *Metrics) TCPOpened(info *reqinfo.TCPInfo) {
	s := m.tcpSeriesFor(info)
	s.opened.Inc()
	if s.overflow {
		m.overflowTCP.Inc()
	}
}

// TCPClosed counts a connection closed and the bytes it moved.
func (m *Metrics) TCPClosed(info *reqinfo.TCPInfo) {
	s := m.tcpSeriesFor(info)
	s.closed.Inc()
	s.sent.Add(float64(info.BytesSent))
	s.received.Add(float64(info.BytesReceived))
}

func (m *Metrics) tcpSeriesFor(info *reqinfo.TCPInfo) *tcpSeries {
	k := tcpKey{inbound: info.Inbound, peer: info.Peer, cluster: info.Cluster, flags: info.Flags}
	m.mu.RLock()
	s := m.tcp[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	cluster := k.cluster
	if k.inbound {
		cluster = "" // an inbound cluster names no service: the workload's own
	}
	c := m.common(k.inbound, k.peer, k.principal, cluster, "", k.flags)
	if k.inbound {
		c.service, c.serviceName, c.serviceNS = serviceOfAuthority("", "", m.cfg.Service)
	}
	c.protocol = "tcp"
	values := c.values("", "", false)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.tcp[k]; s != nil {
		return s
	}
	if len(m.tcp) >= 4*m.cfg.MaxSeries {
		clear(m.tcp)
	}
	joined := strings.Join(values, "\x00")
	s = &tcpSeries{}
	if !m.tcpSets[joined] {
		if len(m.tcpSets) >= m.cfg.MaxSeries {
			values, s.overflow = overflowValues(k.inbound, c.protocol, false), true
		} else {
			m.tcpSets[joined] = true
		}
	}
	s.opened = m.tcpOpened.WithLabelValues(values...)
	s.closed = m.tcpClosed.WithLabelValues(values...)
	s.sent = m.tcpSent.WithLabelValues(values...)
	s.received = m.tcpReceived.WithLabelValues(values...)
	m.tcp[k] = s
	return s
}

// Package reqinfo is what the sidecar records about each HTTP request it handles:
// timing, status, Envoy-style response flags, the upstream used and bytes moved. The
// request path fills one Info per request and hands it to a Recorder (the stats
// counters, and the telemetry: proxy/telemetry) when the request is over; a TCPInfo
// per TCP connection goes to a TCPRecorder.
//
// An Info is owned by one request's goroutine until it is recorded; a Recorder must
// not keep it after Record returns (the request path recycles it).
package reqinfo

import (
	"time"
)

// Flag is one response flag: why a request did not get a normal answer from the
// upstream, as Envoy names them.
type Flag uint16

// The response flags the sidecar sets.
const (
	// NoRoute (NR): no virtual host or route matched.
	NoRoute Flag = 1 << iota
	// NoHealthyUpstream (UH): the cluster had no usable endpoint.
	NoHealthyUpstream
	// UpstreamConnectFailure (UF): connecting to the upstream failed.
	UpstreamConnectFailure
	// UpstreamOverflow (UO): a circuit breaker was open.
	UpstreamOverflow
	// UpstreamRequestTimeout (UT): the route's timeout (or the last per-try timeout)
	// expired before the response.
	UpstreamRequestTimeout
	// UpstreamRetryLimitExceeded (URX): the request was retried and the last attempt
	// still failed in a retriable way.
	UpstreamRetryLimitExceeded
	// UpstreamConnectionTermination (UC): the upstream connection broke before a
	// response.
	UpstreamConnectionTermination
	// DelayInjected (DI): the fault filter delayed the request.
	DelayInjected
	// FaultInjected (FI): the fault filter aborted the request.
	FaultInjected
	// DownstreamConnectionTermination (DC): the client went away.
	DownstreamConnectionTermination
	// RateLimited (RL): a rate limit refused the request (429).
	RateLimited
	// RateLimitServiceError (RLSE): the rate-limit service failed and
	// failure_mode_deny refused the request.
	RateLimitServiceError

	numFlags = iota
)

// Flags are the flags of one request.
type Flags uint16

var flagNames = [numFlags]string{"NR", "UH", "UF", "UO", "UT", "URX", "UC", "DI", "FI", "DC", "RL", "RLSE"}

// All lists every flag, in the order of String.
func All() []Flag {
	out := make([]Flag, numFlags)
	for i := range out {
		out[i] = 1 << i
	}
	return out
}

// String is the flag's short name ("UO").
func (f Flag) String() string {
	for i := range numFlags {
		if f == 1<<i {
			return flagNames[i]
		}
	}
	return "?"
}

// Index is the flag's position in All, for counters kept in an array.
func (f Flag) Index() int {
	for i := range numFlags {
		if f == 1<<i {
			return i
		}
	}
	return -1
}

// Has reports whether f is set.
func (fs Flags) Has(f Flag) bool { return fs&Flags(f) != 0 }

// Set sets f.
func (fs *Flags) Set(f Flag) { *fs |= Flags(f) }

// String joins the flags with "," as Envoy's access log does, or "-" for none.
func (fs Flags) String() string {
	if fs == 0 {
		return "-"
	}
	return string(fs.Append(make([]byte, 0, 16)))
}

// Append appends String's text to b without allocating beyond b's growth.
func (fs Flags) Append(b []byte) []byte {
	if fs == 0 {
		return append(b, '-')
	}
	n := len(b)
	for i := range numFlags {
		if fs&(1<<i) != 0 {
			if len(b) > n {
				b = append(b, ',')
			}
			b = append(b, flagNames[i]...)
		}
	}
	return b
}

// Info is what the sidecar records about one HTTP request.
type Info struct {
	// Listener is the name of the listener that took the request.
	Listener string
	// Start is when the request arrived; Duration how long until the response ended.
	Start    time.Time
	Duration time.Duration
	// Code is the status sent to the client; 0 when none was.
	Code int
	// Flags say why the request did not get a normal upstream answer.
	Flags Flags
	// Cluster and Host are the upstream cluster and endpoint (host:port) of the last
	// attempt; empty when none was made.
	Cluster string
	Host    string
	// Attempts is the number of upstream attempts (1 + retries).
	Attempts int
	// BytesReceived is the request body read from the client; BytesSent the response
	// body written to it.
	BytesReceived int64
	BytesSent     int64
	// PeerIdentity is the SPIFFE ID of the client, verified by mutual TLS on the
	// listener; empty on a plaintext connection.
	PeerIdentity string
	// Audit is set when an AUDIT (RBAC LOG) policy matched the request.
	Audit bool

	// Telemetry is filled only when the sidecar's telemetry is on.
	Telemetry Telemetry
}

// Recorder receives every request's Info when the request is over.
type Recorder interface {
	Record(info *Info)
}

// PeerHeader carries the source workload of a request from the client's sidecar to
// the server's (docs/xds.md, "Sidecar behaviour"): sent on outbound requests to
// clusters of mesh workloads, read and removed by the inbound sidecar.
const PeerHeader = "X-Trellis-Peer"

// Peer names the workload at the other end of a request, for telemetry: the
// destination endpoint of an outbound request (from its endpoint metadata), the source
// of an inbound one (from the x-trellis-peer header). Peers are shared and never
// modified; empty fields are unknown.
type Peer struct {
	Workload  string
	Namespace string
	App       string
	Version   string
	// Principal is the workload's SPIFFE ID.
	Principal string
}

// Telemetry is what the telemetry adds to an Info: filled on the request path only
// when telemetry is on (an HTTP path with a telemetry observer).
type Telemetry struct {
	// Inbound is true when the listener is an inbound one (traffic_direction INBOUND):
	// the sidecar reports as the destination of the request.
	Inbound bool
	// Method, Authority (the Host), Path (without the query) and Proto ("HTTP/1.1",
	// "HTTP/2.0") of the request as it arrived.
	Method, Authority, Path, Proto string
	// GRPC is true for a gRPC request (content-type application/grpc...); GRPCStatus is
	// the grpc-status sent to the client, -1 when none was.
	GRPC       bool
	GRPCStatus int
	// Peer is the other side: the source on an inbound listener, the destination
	// endpoint on an outbound one; nil when unknown.
	Peer *Peer
	// TraceID is the request's trace id when tracing is on (zero otherwise).
	TraceID [16]byte
	// Span is the tracing's state for the request (its span), between the start of the
	// request and Record.
	Span any
}

// TCPInfo is what the sidecar records about one proxied TCP connection.
type TCPInfo struct {
	// Listener is the name of the listener that accepted the connection; Inbound says
	// whether it is an inbound one.
	Listener string
	Inbound  bool
	// Start is when the connection was accepted; Duration how long it lasted.
	Start    time.Time
	Duration time.Duration
	// Cluster and Host are the upstream cluster and endpoint (host:port); Host is empty
	// when no endpoint could be connected.
	Cluster string
	Host    string
	// Peer is the other side when known: the destination endpoint of an outbound
	// connection.
	Peer *Peer
	// Flags: UH when no endpoint was usable, UF when connecting to it failed.
	Flags Flags
	// BytesReceived were read from the downstream side and sent upstream; BytesSent
	// were read from the upstream and written downstream.
	BytesReceived int64
	BytesSent     int64
}

// TCPRecorder receives every proxied TCP connection when it opens (its endpoint
// picked, before connecting) and when it closes. It must not keep the TCPInfo after
// the call.
type TCPRecorder interface {
	TCPOpened(info *TCPInfo)
	TCPClosed(info *TCPInfo)
}

// Package reqinfo is what the sidecar records about each HTTP request it handles:
// timing, status, Envoy-style response flags, the upstream used and bytes moved. The
// request path fills one Info per request and hands it to a Recorder (the stats
// counters now, telemetry later) when the request is over.
//
// An Info is owned by one request's goroutine until it is recorded; a Recorder must
// not keep it after Record returns (the request path recycles it).
package reqinfo

import (
	"strings"
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

	numFlags = iota
)

// Flags are the flags of one request.
type Flags uint16

var flagNames = [numFlags]string{"NR", "UH", "UF", "UO", "UT", "URX", "UC", "DI", "FI", "DC"}

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
	var b strings.Builder
	for i := range numFlags {
		if fs&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(flagNames[i])
		}
	}
	return b.String()
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
}

// Recorder receives every request's Info when the request is over.
type Recorder interface {
	Record(info *Info)
}

package accesslog

import "trellis.dev/trellis/internal/proxy/reqinfo"

// Entry is a copy of what the request path recorded about one request or TCP
// connection: the access log's own record, for other consumers of it (the sidecar's
// request tap). Taking one copies strings and pointers and allocates nothing; Line
// renders it later, off the request path.
type Entry struct{ e entry }

// HTTPEntry copies a finished request's record.
func HTTPEntry(info *reqinfo.Info) Entry { return Entry{httpEntry(info)} }

// TCPEntry copies a closed TCP connection's record.
func TCPEntry(info *reqinfo.TCPInfo) Entry { return Entry{tcpEntry(info)} }

// Line is the access log line of the entry as the sidecar of workload self reports
// it (self is the source of outbound requests, the destination of inbound ones).
func (e *Entry) Line(self *reqinfo.Peer) *Line { return render(self, e.e) }

func httpEntry(info *reqinfo.Info) entry {
	tm := &info.Telemetry
	return entry{
		inbound: tm.Inbound, start: info.Start, duration: info.Duration, traceID: tm.TraceID,
		method: tm.Method, authority: tm.Authority, path: tm.Path, proto: tm.Proto,
		code: info.Code, grpcStatus: tm.GRPCStatus, flags: info.Flags,
		cluster: info.Cluster, host: info.Host, peer: tm.Peer, principal: info.PeerIdentity,
		sent: info.BytesSent, received: info.BytesReceived, audit: info.Audit,
	}
}

func tcpEntry(info *reqinfo.TCPInfo) entry {
	return entry{
		tcp: true, inbound: info.Inbound, start: info.Start, duration: info.Duration,
		proto: "TCP", grpcStatus: -1, flags: info.Flags, cluster: info.Cluster, host: info.Host,
		peer: info.Peer, sent: info.BytesSent, received: info.BytesReceived,
	}
}
